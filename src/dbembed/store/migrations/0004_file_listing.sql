-- dbembed files / GET /v1/files: keyset pages in every sort order stay index range scans on trees
-- with 100k+ files.  The expressions match dbembed.store.files.SORTS exactly.
CREATE INDEX sources_list_path ON dbembed.sources (path, id);
CREATE INDEX sources_list_indexed ON dbembed.sources ((coalesce(processed_at, '-infinity'::timestamptz)), id);
CREATE INDEX sources_list_change ON dbembed.sources ((coalesce(seen_mtime, -1)), id);
CREATE INDEX sources_list_duration ON dbembed.sources ((coalesce(duration_s, -1)), id);
CREATE INDEX sources_list_rows ON dbembed.sources ((coalesce(rows, -1)), id);
CREATE INDEX sources_list_chunks ON dbembed.sources ((coalesce(chunks, -1)), id);
CREATE INDEX sources_list_size ON dbembed.sources ((coalesce(seen_size, -1)), id);
