-- Sessions, for operators who keep them in PostgreSQL instead of Redis
-- (TECHASSIST_STORE=postgresql://...), with their answers, plan snapshots, leases
-- and processed ids. Times a sweep compares are seconds since the epoch, as the
-- other stores keep them; lease and processed-id expiries are the server's clock.
CREATE TABLE sessions (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    plan_digest TEXT,
    saved_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_saved ON sessions (state, saved_at);
CREATE INDEX sessions_plan ON sessions (plan_digest);

-- The replies of a session's latest saves, by the message id that asked.
CREATE TABLE session_answers (
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    replies TEXT NOT NULL,
    PRIMARY KEY (key, message_id)
);
CREATE INDEX session_answers_version ON session_answers (key, version);

CREATE TABLE plan_snapshots (
    digest TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    put_at DOUBLE PRECISION NOT NULL
);

-- One writer per session: the holder's random token, until expires_at.
CREATE TABLE session_leases (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Processed ids (Slack events, messages, clicks) until they expire; fresh tells the
-- statement that recorded an id whether it was new then.
CREATE TABLE seen_ids (
    id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    fresh BOOLEAN NOT NULL DEFAULT TRUE
);
