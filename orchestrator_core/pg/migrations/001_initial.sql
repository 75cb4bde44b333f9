-- The work orders, the tool audit and the credentials.
-- Ids and e-mail addresses compare case-insensitively: each has a lower-case *_key
-- column beside the value as given, and the key is what is indexed and compared.
CREATE TABLE technicians (
    cuid_key TEXT PRIMARY KEY,
    cuid TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    email_key TEXT,
    slack_user_id TEXT
);
CREATE INDEX technicians_email ON technicians (email_key);
CREATE INDEX technicians_slack ON technicians (slack_user_id);

CREATE TABLE orders (
    order_key TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    cuid_key TEXT NOT NULL REFERENCES technicians (cuid_key),
    cuid TEXT NOT NULL,
    order_type TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_start TIMESTAMPTZ NOT NULL,
    scheduled_end TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    customer_name TEXT NOT NULL,
    address TEXT NOT NULL,
    service_tier TEXT,
    details JSONB NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '',
    closed_at TIMESTAMPTZ
);
CREATE INDEX orders_cuid ON orders (cuid_key, status);

CREATE TABLE inventory (
    serial_key TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    order_key TEXT REFERENCES orders (order_key),
    order_id TEXT
);
CREATE INDEX inventory_order ON inventory (order_key);

CREATE TABLE escalations (
    id BIGSERIAL PRIMARY KEY,
    cuid_key TEXT NOT NULL,
    cuid TEXT NOT NULL,
    order_id TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX escalations_by_cuid ON escalations (cuid_key, created_at);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    order_id TEXT,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    try_no INTEGER NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    error_kind TEXT,
    result TEXT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_call ON audit (session_id, step_id, attempt);

-- Technicians' credentials, by their digest only.
CREATE TABLE tokens (
    digest TEXT PRIMARY KEY,
    cuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_cuid ON tokens (cuid, kind);
