-- The point-in-time join, formulated as the engine runs it (LATERAL: one index descent per entity
-- row) and as a sort-merge would (the probes' keys' whole history, ordered by key and time, merged
-- with the probes), timed on the same data (scripts/bench.sh, group "export"). The probes are the
-- first :chunk entity rows (one of the engine's chunks), or all of them with -v chunk=0.
-- Each timed statement is announced by "== name" and followed by psql's "Time: N ms"; its output
-- (CSV) goes to /dev/null. Given several times in one session (psql -f joins.sql -f joins.sql ...),
-- the statements run again on the same probes: a new backend's first touch of each shared buffer
-- is a page fault (~10 µs), which the first pass pays and a long-lived export connection does not.
-- Run with psql -qtA -v schema=sluice -v chunk=5000.
\set ON_ERROR_STOP 1
\if :{?probes_ready}
\else
SET TimeZone = 'UTC';
SELECT :chunk > 0 AS is_chunk \gset
CREATE TEMP TABLE probes AS
  SELECT row_number() OVER () AS i, user_id AS key, (extract(epoch from event_timestamp) * 1000)::bigint AS at
  FROM (SELECT * FROM bench_export.entities LIMIT CASE WHEN :chunk > 0 THEN :chunk END) AS e;
ANALYZE probes;
\if :is_chunk
SELECT array_agg(key ORDER BY i)::text AS keys, array_agg(at ORDER BY i)::text AS ats FROM probes \gset
\endif
\o /dev/null
\timing on
\set probes_ready 1
\endif

\if :is_chunk
-- The engine's two statements (store/postgres/history_join.cpp) with the chunk as arrays.
\echo == lateral_newest
COPY (SELECT p.i, h.* FROM unnest(:'keys'::text[], :'ats'::bigint[]) WITH ORDINALITY AS p(key, at, i) CROSS JOIN LATERAL (
  SELECT (extract(epoch from event_time) * 1000)::bigint AS event_ms, (extract(epoch from ingested_at) * 1000)::bigint AS ingested_ms,
         c0, c1, c2, d0, d1, d2, s0, s1, s2, b0
  FROM :schema.activity_history WHERE key = p.key AND event_time <= to_timestamp(p.at / 1000.0)
  ORDER BY event_time DESC, src_offset ASC NULLS LAST LIMIT 1) h) TO STDOUT (FORMAT csv);
\echo == lateral_window
COPY (SELECT p.i, h.* FROM unnest(:'keys'::text[], :'ats'::bigint[]) WITH ORDINALITY AS p(key, at, i) CROSS JOIN LATERAL (
  SELECT (extract(epoch from event_time) * 1000)::bigint AS event_ms, (extract(epoch from ingested_at) * 1000)::bigint AS ingested_ms,
         c0, c1, c2, d0, d1, d2, s0, s1, s2, b0
  FROM :schema.activity_history WHERE key = p.key AND event_time <= to_timestamp(p.at / 1000.0)
    AND event_time > to_timestamp((p.at - 3600000::bigint) / 1000.0)) h ORDER BY p.i, h.event_ms) TO STDOUT (FORMAT csv);

-- The same in one statement, the sum computed by PostgreSQL (the reference's form).
\echo == lateral_sql
COPY (SELECT p.i, h.*, w.d0_sum_1h FROM probes AS p
  LEFT JOIN LATERAL (
    SELECT x.event_time, x.c0, x.c1, x.c2, x.d0, x.d1, x.d2, x.s0, x.s1, x.s2, x.b0 FROM :schema.activity_history AS x
    WHERE x.key = p.key AND x.event_time <= to_timestamp(p.at / 1000.0)
    ORDER BY x.event_time DESC, x.src_offset ASC NULLS LAST LIMIT 1) AS h ON true
  LEFT JOIN LATERAL (
    SELECT sum(x.d0) AS d0_sum_1h FROM :schema.activity_history AS x
    WHERE x.key = p.key AND x.event_time > to_timestamp((p.at - 3600000) / 1000.0)
      AND x.event_time <= to_timestamp(p.at / 1000.0)) AS w ON true
  ORDER BY p.i) TO STDOUT (FORMAT csv);

-- A range join keeping the newest row per probe (newest only, no sum).
\echo == distinct_on
COPY (SELECT DISTINCT ON (p.i) p.i, x.event_time, x.c0, x.c1, x.c2, x.d0, x.d1, x.d2, x.s0, x.s1, x.s2, x.b0
  FROM probes AS p LEFT JOIN :schema.activity_history AS x ON x.key = p.key AND x.event_time <= to_timestamp(p.at / 1000.0)
  ORDER BY p.i, x.event_time DESC, x.src_offset ASC NULLS LAST) TO STDOUT (FORMAT csv);
\endif

-- Sort-merge in SQL: probes and the history of their keys in one stream ordered by key and time
-- (a probe after the history rows of its moment), the last history row carried forward to each
-- probe (grp counts history rows so far; each group opens with one), the sum over the hour as a
-- window frame; probes out in input order.
\echo == sortmerge_sql
COPY (
  WITH u AS (
    SELECT p.key, to_timestamp(p.at / 1000.0) AS t, 1 AS probe, p.i, NULL::bigint AS src_offset,
           NULL::bigint AS c0, NULL::bigint AS c1, NULL::bigint AS c2, NULL::float8 AS d0, NULL::float8 AS d1,
           NULL::float8 AS d2, NULL::text AS s0, NULL::text AS s1, NULL::text AS s2, NULL::boolean AS b0
    FROM probes AS p
    UNION ALL
    SELECT x.key, x.event_time, 0, NULL, x.src_offset, x.c0, x.c1, x.c2, x.d0, x.d1, x.d2, x.s0, x.s1, x.s2, x.b0
    FROM :schema.activity_history AS x WHERE x.key IN (SELECT key FROM probes)),
  g AS (
    SELECT u.*,
           count(*) FILTER (WHERE probe = 0) OVER (PARTITION BY key ORDER BY t, probe, src_offset DESC ROWS UNBOUNDED PRECEDING) AS grp,
           sum(d0) OVER (PARTITION BY key ORDER BY t RANGE BETWEEN interval '1 hour' PRECEDING AND CURRENT ROW) AS d0_sum_1h
    FROM u),
  r AS (
    SELECT probe, i, d0_sum_1h,
           first_value(CASE WHEN probe = 0 THEN t END) OVER w AS event_time,
           first_value(c0) OVER w AS c0, first_value(c1) OVER w AS c1, first_value(c2) OVER w AS c2,
           first_value(d0) OVER w AS d0, first_value(d1) OVER w AS d1, first_value(d2) OVER w AS d2,
           first_value(s0) OVER w AS s0, first_value(s1) OVER w AS s1, first_value(s2) OVER w AS s2,
           first_value(b0) OVER w AS b0
    FROM g WINDOW w AS (PARTITION BY key, grp ORDER BY probe))
  SELECT i, event_time, c0, c1, c2, d0, d1, d2, s0, s1, s2, b0, d0_sum_1h FROM r WHERE probe = 1 ORDER BY i
) TO STDOUT (FORMAT csv);

-- What a sort-merge in the engine would read at the least: the probes' keys' history, ordered.
\echo == history_fetch
COPY (SELECT x.key, (extract(epoch from x.event_time) * 1000)::bigint, x.src_offset,
             x.c0, x.c1, x.c2, x.d0, x.d1, x.d2, x.s0, x.s1, x.s2, x.b0
  FROM :schema.activity_history AS x WHERE x.key IN (SELECT key FROM probes)
  ORDER BY x.key, x.event_time, x.src_offset DESC) TO STDOUT (FORMAT csv);
