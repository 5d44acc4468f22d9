-- Gives committed events their place in the feed (listEvents in src/events/list-events.ts):
-- up to `max_events` events with no position yet, in the order they were written (`n`), get the
-- positions after the highest given so far. Returns how many it placed. A call waits for
-- another one in progress, so once it returns, every event committed before it began is
-- placed: a reader that places first reads its own writes.
--
-- Why a reader following positions never skips an event: one call at a time places events (the
-- advisory lock is held until its transaction ends), each call only places events whose
-- transactions have committed (READ COMMITTED) and gives them positions above every position
-- given before, and its positions become visible together, at its commit. So the positions a
-- reader sees are always 1..k with nothing missing, and an event that commits late, after
-- later-written ones were placed, is placed later, above them: it comes after the reader's
-- cursor, never behind it. One account's events are placed in their sequence order: each is
-- written after the one before it committed (the account's lock), so it has a larger `n`, and
-- it cannot have committed before it.
CREATE OR REPLACE FUNCTION holdfast_position_events(max_events int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  base int8;
  picked jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('holdfast_position_events'));
  SELECT jsonb_agg(jsonb_build_object('bucket', p.bucket, 'n', p.n) ORDER BY p.n) INTO picked
    FROM (SELECT v.bucket, v.n FROM events v WHERE v.position IS NULL ORDER BY v.n LIMIT max_events) p;
  IF picked IS NULL THEN
    RETURN 0;
  END IF;
  SELECT COALESCE(max(v.position), 0) INTO base FROM events v;
  UPDATE events v
     SET position = base + x.rank
    FROM (SELECT (a.value->>'bucket')::int AS bucket, (a.value->>'n')::int8 AS n, a.rank
            FROM jsonb_array_elements(picked) WITH ORDINALITY AS a(value, rank)) x
   WHERE v.bucket = x.bucket AND v.n = x.n AND v.position IS NULL;
  RETURN jsonb_array_length(picked);
END;
$$;
