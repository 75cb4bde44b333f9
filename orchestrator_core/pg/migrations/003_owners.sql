-- Which connection holds each technician's CUID, for websocket takeover across
-- instances on a PostgreSQL session store: the random token of the connection
-- that claimed it last, and that claim's fence, from one sequence, so that of
-- two connections the one with the larger fence is the newer, whatever order
-- their announcements arrive in. A claim overwrites the row and announces
-- itself with NOTIFY; a connection that ends deletes the row only while it
-- still holds it.
CREATE SEQUENCE connection_owner_fences;

CREATE TABLE connection_owners (
    cuid TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    fence BIGINT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
