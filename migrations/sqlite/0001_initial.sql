-- Mediator's store. Times are milliseconds since the Unix epoch (BIGINT) so
-- that one set of queries serves SQLite and PostgreSQL alike.
CREATE TABLE accounts (
    account_sid   TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    login         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    permissions   TEXT NOT NULL DEFAULT '',
    date_created  BIGINT NOT NULL
);

CREATE TABLE dids (
    did_sid              TEXT PRIMARY KEY,
    account_sid          TEXT NOT NULL REFERENCES accounts(account_sid) ON DELETE CASCADE,
    phonenumber          TEXT NOT NULL UNIQUE,
    country_code         TEXT NOT NULL,
    in_country_format    TEXT NOT NULL,
    international_format TEXT NOT NULL,
    date_created         BIGINT NOT NULL
);
CREATE INDEX dids_account ON dids (account_sid, phonenumber);

CREATE TABLE bindings (
    binding_sid     TEXT PRIMARY KEY,
    account_sid     TEXT NOT NULL REFERENCES accounts(account_sid) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    destination_did TEXT NOT NULL,
    origination_did TEXT,
    redirect_did    TEXT NOT NULL,
    dtmf            TEXT,
    attributes      TEXT NOT NULL,
    date_created    BIGINT NOT NULL,
    max_expires_at  BIGINT,
    wait_expires_at BIGINT
);
CREATE INDEX bindings_account_created ON bindings (account_sid, date_created, binding_sid);
CREATE INDEX bindings_redirect ON bindings (redirect_did, origination_did);
CREATE INDEX bindings_max_expiry ON bindings (max_expires_at);

CREATE TABLE dialouts (
    dialout_sid               TEXT PRIMARY KEY,
    account_sid               TEXT NOT NULL REFERENCES accounts(account_sid) ON DELETE CASCADE,
    redirect_did              TEXT NOT NULL,
    stage_one_destination_did TEXT NOT NULL,
    stage_two_destination_did TEXT NOT NULL,
    attributes                TEXT NOT NULL,
    date_created              BIGINT NOT NULL,
    fire_at                   BIGINT NOT NULL,
    state                     TEXT NOT NULL DEFAULT 'scheduled'
);
CREATE INDEX dialouts_account_created ON dialouts (account_sid, date_created, dialout_sid);
CREATE INDEX dialouts_fire ON dialouts (state, fire_at);
