-- Core file index: collections (one vector space each), runs, sources (one row per file).
-- Chunk tables are per collection (dbembed.chunks_<id>) because the vector column's
-- dimension is fixed per table; they are created by dbembed.store.collections.

CREATE TABLE dbembed.collections (
    id           serial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    model        text NOT NULL,
    dimensions   integer NOT NULL CHECK (dimensions > 0),
    vector_type  text NOT NULL CHECK (vector_type IN ('halfvec', 'vector')),
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dbembed.runs (
    id              bigserial PRIMARY KEY,
    collection_id   integer REFERENCES dbembed.collections (id) ON DELETE CASCADE,
    worker          text NOT NULL,
    roots           text[] NOT NULL DEFAULT '{}',
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
    files_ok        integer NOT NULL DEFAULT 0,
    files_failed    integer NOT NULL DEFAULT 0,
    files_skipped   integer NOT NULL DEFAULT 0,
    files_pending   integer NOT NULL DEFAULT 0,
    files_missing   integer NOT NULL DEFAULT 0,
    rows            bigint NOT NULL DEFAULT 0,
    chunks          bigint NOT NULL DEFAULT 0,
    texts_embedded  bigint NOT NULL DEFAULT 0,
    texts_reused    bigint NOT NULL DEFAULT 0,
    seconds         double precision,
    usage           jsonb NOT NULL DEFAULT '{}'::jsonb,
    stats           jsonb NOT NULL DEFAULT '{}'::jsonb,
    error           text
);
CREATE INDEX runs_collection_started ON dbembed.runs (collection_id, started_at DESC);

CREATE TABLE dbembed.sources (
    id              bigserial PRIMARY KEY,
    collection_id   integer NOT NULL REFERENCES dbembed.collections (id) ON DELETE CASCADE,
    path            text NOT NULL,
    -- what discovery saw last
    seen_size       bigint,
    seen_mtime      double precision,
    seen_at         timestamptz,
    -- what the index holds (as of the last successful index of this file)
    size            bigint,
    mtime           double precision,
    content_hash    text,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'leased', 'indexed', 'failed', 'pending', 'missing')),
    error           text,
    tables          integer,
    rows            bigint,
    chunks          bigint,
    model           text,
    processed_at    timestamptz,
    duration_s      double precision,
    run_id          bigint REFERENCES dbembed.runs (id) ON DELETE SET NULL,
    lease_owner     text,
    lease_expires   timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (collection_id, path)
);
CREATE INDEX sources_collection_status ON dbembed.sources (collection_id, status);
