-- What a run rejected below the file level, so it is visible (status, files, HTTP, web page):
-- a table that could not be read, a row whose document could not be built, a chunk whose text the
-- provider refused or whose vector failed the checks (non-finite, zero, wrong length).
-- The file itself is still indexed; rejected chunks are retried by the next run that touches the file.

ALTER TABLE dbembed.sources
    ADD COLUMN rejected_tables integer NOT NULL DEFAULT 0,
    ADD COLUMN rejected_rows   integer NOT NULL DEFAULT 0,
    ADD COLUMN rejected_chunks integer NOT NULL DEFAULT 0;

-- One row per rejected item of the file's latest successful index (replaced in the file's transaction).
CREATE TABLE dbembed.rejections (
    id           bigserial PRIMARY KEY,
    source_id    bigint NOT NULL REFERENCES dbembed.sources (id) ON DELETE CASCADE,
    run_id       bigint REFERENCES dbembed.runs (id) ON DELETE SET NULL,
    level        text NOT NULL CHECK (level IN ('table', 'row', 'chunk')),
    table_name   text,
    row_key      text,
    chunk_index  integer,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejections_source ON dbembed.rejections (source_id);

-- Runs whose worker died show as 'abandoned' (decided by status from the heartbeat; also stored
-- once another run notices).
ALTER TABLE dbembed.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE dbembed.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted', 'abandoned'));
