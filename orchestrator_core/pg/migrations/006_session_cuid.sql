-- The sessions of each technician: the CUID of a session's last save (NULL before the
-- technician is identified), written by the save, and the index that lists a
-- technician's sessions most recently saved first, however many others were saved since.
ALTER TABLE sessions ADD COLUMN cuid TEXT;
CREATE INDEX sessions_cuid ON sessions (cuid, saved_at DESC) WHERE cuid IS NOT NULL;

-- Sessions saved before: their CUID from their data, in one statement; should a row
-- not be JSON, row by row, leaving that one without.
DO $$
DECLARE
    r RECORD;
BEGIN
    BEGIN
        UPDATE sessions SET cuid = data::jsonb ->> 'cuid'
        WHERE jsonb_typeof(data::jsonb -> 'cuid') = 'string';
    EXCEPTION WHEN invalid_text_representation THEN
        FOR r IN SELECT key, data FROM sessions LOOP
            BEGIN
                UPDATE sessions SET cuid = r.data::jsonb ->> 'cuid'
                WHERE key = r.key AND jsonb_typeof(r.data::jsonb -> 'cuid') = 'string';
            EXCEPTION WHEN invalid_text_representation THEN
                NULL;
            END;
        END LOOP;
    END;
END
$$;
