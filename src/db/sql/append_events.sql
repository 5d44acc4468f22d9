-- Appends the events of a batch of state changes (appendEvents in src/events/append-events.ts),
-- in the transaction that made them: one statement per batch.
--
-- `events` is a JSON array of {i, bucket, id, account_id, type, data}, in the order the changes
-- were applied. Each account's events get the next numbers of its sequence, in the order of
-- `i`, after the highest it has (found through the primary key). Every change that
-- appends an event has locked its account row (or inserted it) in this transaction, so no
-- other transaction numbers the same account's events meanwhile, and the rows are inserted in
-- the order of `i`, so `n` follows each account's sequence.
CREATE OR REPLACE FUNCTION holdfast_append_events(events jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  buckets int[];
  ids text[];
  numbered jsonb;
BEGIN
  -- Plain Postgres: one INSERT … SELECT, planned once per session.
  IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
    INSERT INTO events (bucket, id, account_id, sequence, type, data)
    SELECT e.bucket, e.id, e.account_id,
           COALESCE((SELECT max(v.sequence) FROM events v
                      WHERE v.bucket = e.bucket AND v.account_id = e.account_id), 0)
             + row_number() OVER (PARTITION BY e.bucket, e.account_id ORDER BY e.i),
           e.type, e.data
      FROM jsonb_to_recordset(events)
           AS e(i int, bucket int, id uuid, account_id text, type text, data jsonb)
     ORDER BY e.i;
    RETURN;
  END IF;
  -- Citus: the rows numbered first, then one INSERT … VALUES routed to their shard.
  SELECT array_agg(DISTINCT (x->>'bucket')::int), array_agg(DISTINCT x->>'account_id')
    INTO buckets, ids FROM jsonb_array_elements(events) x;
  SELECT jsonb_agg(jsonb_build_object(
           'bucket', e.bucket, 'id', e.x->'id', 'account_id', e.account_id,
           'sequence', COALESCE(l.last, 0) + e.rank, 'type', e.x->'type', 'data', e.x->'data')
           ORDER BY e.i)
    INTO numbered
    FROM (SELECT x, (x->>'i')::int AS i, (x->>'bucket')::int AS bucket, x->>'account_id' AS account_id,
                 row_number() OVER (PARTITION BY x->>'bucket', x->>'account_id'
                                    ORDER BY (x->>'i')::int) AS rank
            FROM jsonb_array_elements(events) x) e
    LEFT JOIN (SELECT v.bucket, v.account_id, max(v.sequence) AS last
                 FROM events v
                WHERE v.bucket = ANY (buckets) AND v.account_id = ANY (ids)
                GROUP BY v.bucket, v.account_id) l
      ON l.bucket = e.bucket AND l.account_id = e.account_id;
  PERFORM holdfast_insert_rows('events', numbered);
END;
$$;
