-- Call detail record callbacks (issue 7): an account's callback URL and the
-- secret its deliveries are signed with; the DTMF and attributes of the
-- binding (or dialout) a call followed, kept with its record; and the
-- outbox of deliveries, one row per record while it is not yet delivered.
ALTER TABLE accounts ADD COLUMN callback_url TEXT;
ALTER TABLE accounts ADD COLUMN callback_secret TEXT;
ALTER TABLE calls ADD COLUMN dtmf TEXT;
ALTER TABLE calls ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
CREATE TABLE callback_outbox (
    call_sid        TEXT PRIMARY KEY,
    account_sid     TEXT NOT NULL,
    date_created    BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    failed_at       BIGINT
);
CREATE INDEX callback_outbox_due ON callback_outbox (failed_at, next_attempt_at);
CREATE INDEX calls_account_sid ON calls (account_sid, call_sid);
