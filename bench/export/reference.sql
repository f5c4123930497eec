-- The export row's reference: the same training set as Sluice's export, written by hand as
-- PostgreSQL LATERAL joins and run by psql: for each entity row, in order, the newest history row
-- at or before its timestamp (the first delivered among equal event times) with its 10 fields,
-- and the sum of d0 over the hour up to it; CSV to psql's output.
-- Run with psql -v schema=sluice.
\set ON_ERROR_STOP 1
COPY (
  SELECT e.user_id, e.event_timestamp, e.label,
         h.c0, h.c1, h.c2, h.d0, h.d1, h.d2, h.s0, h.s1, h.s2, h.b0, w.d0_sum_1h
  FROM bench_export.entities AS e
  LEFT JOIN LATERAL (
    SELECT x.c0, x.c1, x.c2, x.d0, x.d1, x.d2, x.s0, x.s1, x.s2, x.b0
    FROM :schema.activity_history AS x
    WHERE x.key = e.user_id AND x.event_time <= e.event_timestamp
    ORDER BY x.event_time DESC, x.src_offset ASC NULLS LAST
    LIMIT 1) AS h ON true
  LEFT JOIN LATERAL (
    SELECT sum(x.d0) AS d0_sum_1h
    FROM :schema.activity_history AS x
    WHERE x.key = e.user_id AND x.event_time > e.event_timestamp - interval '1 hour'
      AND x.event_time <= e.event_timestamp) AS w ON true
) TO STDOUT (FORMAT csv);
