-- Whether a schedule (see customer_partitions) applies at `at`: the validity range is
-- half-open, and a weekly window with end <= start spans midnight and belongs to the
-- day it starts on. Used by the legacy one-query routing (warp_db::legacy_route).
CREATE FUNCTION schedule_applies(
    valid_from timestamptz, valid_to timestamptz, tz text, days smallint,
    start_minute smallint, end_minute smallint, at timestamptz
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (valid_from IS NULL OR at >= valid_from)
       AND (valid_to IS NULL OR at < valid_to)
       AND (tz IS NULL OR (
            SELECT CASE WHEN start_minute < end_minute
                   THEN (days::int >> dow) & 1 = 1
                        AND minute >= start_minute AND minute < end_minute
                   ELSE (minute >= start_minute AND (days::int >> dow) & 1 = 1)
                     OR (minute < end_minute AND (days::int >> ((dow + 6) % 7)) & 1 = 1)
                   END
            FROM (SELECT extract(isodow FROM l)::int - 1 AS dow,
                         extract(hour FROM l)::int * 60 + extract(minute FROM l)::int AS minute
                  FROM (SELECT at AT TIME ZONE tz AS l) AS local_time) AS parts))
$$;
