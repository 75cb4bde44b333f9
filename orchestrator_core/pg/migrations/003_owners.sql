-- Which connection holds each technician's CUID, for websocket takeover across
-- instances on a PostgreSQL session store: the random token of the connection
-- that claimed it last. A claim overwrites the row and announces itself with
-- NOTIFY; a connection that ends deletes the row only while it still holds it.
CREATE TABLE connection_owners (
    cuid TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
