-- The dispatcher's queue: each escalation's state (open, taken, answered, closed),
-- who took it, the answer, the conversation it came from, the step it stood on
-- (id, k of n), the technician's words and the values so far (sensitive ones
-- masked), and how it ended. Rows from before stay readable as open escalations.
ALTER TABLE escalations
    ADD COLUMN status TEXT NOT NULL DEFAULT 'open',
    ADD COLUMN operator TEXT,
    ADD COLUMN answer TEXT,
    ADD COLUMN session_key TEXT,
    ADD COLUMN step TEXT,
    ADD COLUMN step_no INTEGER,
    ADD COLUMN step_of INTEGER,
    ADD COLUMN words TEXT,
    ADD COLUMN params TEXT NOT NULL DEFAULT '{}',
    ADD COLUMN updated_at TIMESTAMPTZ,
    ADD COLUMN outcome TEXT;
CREATE INDEX escalations_by_status ON escalations (status, id);

-- An order's audit trail, for the console.
CREATE INDEX audit_by_order ON audit (lower(order_id));

-- The dispatcher console's accounts: argon2 hashes only.
CREATE TABLE operators (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
