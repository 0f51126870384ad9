-- Call detail records: one row per call that reached call control.
CREATE TABLE calls (
    call_sid        TEXT PRIMARY KEY,
    account_sid     TEXT,
    binding_sid     TEXT,
    type            TEXT NOT NULL,
    direction       TEXT NOT NULL,
    number_src      TEXT NOT NULL,
    number_dst      TEXT NOT NULL,
    number_redirect TEXT NOT NULL,
    date_start      BIGINT NOT NULL,
    date_answer     BIGINT,
    date_stop       BIGINT NOT NULL,
    duration        BIGINT NOT NULL,
    sip_status      INTEGER NOT NULL,
    hangup_side     TEXT
);
CREATE INDEX calls_account_stop ON calls (account_sid, date_stop, call_sid);
CREATE INDEX calls_binding ON calls (binding_sid);
