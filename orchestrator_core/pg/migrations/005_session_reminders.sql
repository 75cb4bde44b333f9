-- Reminders and the sessions list of the dispatcher console: when each session is
-- due a reminder (seconds since the epoch, NULL for never), written by the save,
-- and the indexes that list the sessions due and the most recently saved.
ALTER TABLE sessions ADD COLUMN remind_at DOUBLE PRECISION;
CREATE INDEX sessions_due ON sessions (remind_at) WHERE remind_at IS NOT NULL;
CREATE INDEX sessions_recent ON sessions (saved_at DESC);
