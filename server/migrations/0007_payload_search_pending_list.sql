-- The payload trigram index (migration 5) keeps new entries in a pending list (GIN fastupdate)
-- that the inserting statement merges into the index once the list exceeds
-- gin_pending_list_limit (4 MB by default): that one batch then waits tens of milliseconds.
-- Measured (server/README.md, "Benchmark"; the collector through nginx at 64 connections on 2
-- cores): p99 17-27 ms with 4 MB, 7.6 ms with 256 kB, at the same throughput and PostgreSQL
-- CPU per record; fastupdate off gives 10 ms but costs twice PostgreSQL's CPU per record.
-- A no-op where the index does not exist (pg_trgm missing, or payload_search_index = false).
ALTER INDEX IF EXISTS records_payload_trgm_idx SET (gin_pending_list_limit = 256);
