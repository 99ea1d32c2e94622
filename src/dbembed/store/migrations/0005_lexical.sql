-- The lexical (full-text) side of hybrid search: a `lexical tsvector` beside every chunk table and
-- every native chat memory table.  Its lexemes are dbembed.text.lexical's tokens (character bigrams
-- for CJK and other unspaced scripts, case-folded words elsewhere), stored verbatim: no text search
-- configuration, dictionary or extension is involved, so it works on any PostgreSQL (embedded, RDS,
-- Aurora).  New tables are created with the column (store/collections.py, chat/spaces.py).
--
-- Existing tables get the column here (a catalog-only change) and are listed in lexical_backfill;
-- the Python step dbembed.store.lexical.backfill_pending then fills the column from the stored
-- text, in batches, without re-embedding anything, builds the GIN index and removes the entry.

CREATE TABLE dbembed.lexical_backfill (
    relname      text PRIMARY KEY,   -- table in schema dbembed
    text_column  text NOT NULL,      -- the column the tokens are computed from
    kind         text NOT NULL CHECK (kind IN ('chunks', 'memory'))
);

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM dbembed.collections ORDER BY id LOOP
        IF to_regclass(format('dbembed.chunks_%s', r.id)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE dbembed.chunks_%s ADD COLUMN IF NOT EXISTS lexical tsvector', r.id);
            INSERT INTO dbembed.lexical_backfill VALUES (format('chunks_%s', r.id), 'text', 'chunks')
                ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;
    FOR r IN SELECT id FROM dbembed.chat_memory_spaces WHERE name NOT LIKE 'mapped:%' ORDER BY id LOOP
        IF to_regclass(format('dbembed.chat_memory_%s', r.id)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE dbembed.chat_memory_%s ADD COLUMN IF NOT EXISTS lexical tsvector', r.id);
            INSERT INTO dbembed.lexical_backfill VALUES (format('chat_memory_%s', r.id), 'summary', 'memory')
                ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;
END
$$;
