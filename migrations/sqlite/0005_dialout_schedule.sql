-- Dialout scheduling (issue 6): which node claimed a dialout and when it
-- began (state 'started'; never claimed again), and on call detail records
-- the dialout a leg belongs to and how the dialout ended.
ALTER TABLE dialouts ADD COLUMN claimed_by TEXT;
ALTER TABLE dialouts ADD COLUMN started_at BIGINT;
ALTER TABLE calls ADD COLUMN dialout_sid TEXT;
ALTER TABLE calls ADD COLUMN outcome TEXT;
CREATE INDEX calls_dialout ON calls (dialout_sid);
