-- The export rows' data (scripts/bench.sh, group "export"): :events events per key for :keys keys
-- spread over one day in the history of the feature set "activity" (which the daemon created in
-- :schema), and :rows entity rows over the same keys at random moments of that day, in
-- bench_export.entities. Keys are 12-digit numbers, as the other rows make them.
-- Run with psql -v schema=sluice -v keys=100000 -v events=50 -v rows=1000000.
\set ON_ERROR_STOP 1
SELECT setseed(0.5);
-- Events in the order ingest writes them (time by time, every key), so a key's events lie on
-- different pages as they would; each in a slot of 1/:events of the day, at a random moment in it.
INSERT INTO :schema.activity_history (key, event_time, c0, c1, c2, d0, d1, d2, s0, s1, s2, b0,
                                      ingested_at, src_topic, src_partition, src_offset)
SELECT lpad((g % :keys)::text, 12, '0'), t,
       g % 1000003, (g * 7919) % 100000, g,
       random() * 1000, random(), g / 3.0,
       substr(h, 1, 20), substr(h, 7, 20), substr(h, 13, 20),
       g % 3 = 0,
       t + interval '2 s', 'bench-activity', (g % 4)::int, g
FROM (SELECT g, md5(g::text) AS h,
             timestamptz '2024-01-01 00:00:00+00'
               + ((g / :keys) * (86400000 / :events) + floor(random() * (86400000 / :events))) * interval '1 ms' AS t
      FROM generate_series(0, :keys::bigint * :events - 1) AS g) AS s;

DROP SCHEMA IF EXISTS bench_export CASCADE;
CREATE SCHEMA bench_export;
CREATE TABLE bench_export.entities AS
SELECT lpad(floor(random() * :keys)::bigint::text, 12, '0') AS user_id,
       timestamptz '2024-01-01 00:00:00+00' + floor(random() * 86400000) * interval '1 ms' AS event_timestamp,
       (random() < 0.1)::int AS label
FROM generate_series(1, :rows);

-- Hint bits and the visibility map set, statistics taken: every timed read sees the same tables.
VACUUM (ANALYZE) :schema.activity_history;
VACUUM (ANALYZE) bench_export.entities;
CHECKPOINT;
