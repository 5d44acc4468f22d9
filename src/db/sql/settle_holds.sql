-- Settles many holds in one statement (settleHolds in src/reservations/settle-hold.ts).
--
-- `commands` is a JSON array of {i, bucket, hold_id, amount, transaction_id}: `bucket` is the
-- one the hold id carries, `amount` null settles the whole hold, `transaction_id` (in the same
-- bucket) is the id of the purchase transaction it posts. A hold asked twice is settled by its
-- first command (lowest `i`) whose amount fits; the others find it settled, or are refused.
--
-- The pending holds asked for are locked first, by (bucket, id); a hold that a concurrent
-- transaction resolved first is no longer pending when its lock is granted, and is left out.
-- Then holdfast_post (src/db/sql/post.sql) posts each settle's purchase transaction (user →
-- @revenue: the captured coins leave settled, the whole hold leaves held), numbered in the order
-- of `i` within its account, locking accounts in lock order after the holds. Nothing locks a
-- hold after an account, so two batches, or a batch and a single settle, release or expire
-- (hold, then account), cannot wait on each other in a cycle. Last, the holds whose posting went
-- through become `settled` (after their transaction exists: on Citus the statements run one by
-- one, and each foreign key is checked at once).
--
-- One row per command, in order of `i`: whether it posted, its refusal (hold_not_found,
-- hold_not_pending, amount_exceeds_hold) or null, and the hold as it is now (null when there is
-- no such hold), as jsonb with the table's column names. A command before the one that settled
-- its hold met the hold pending, as in serial order.
CREATE OR REPLACE FUNCTION holdfast_settle_holds(commands jsonb)
RETURNS TABLE (o_i int, o_posted boolean, o_refusal text, o_hold jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  buckets int[];
  pending uuid[];
  plan jsonb;
  holds_now jsonb;
  posted int[] := '{}';
BEGIN
  SELECT array_agg(DISTINCT (x->>'bucket')::int) INTO buckets FROM jsonb_array_elements(commands) x;
  SELECT array_agg(l.id) INTO pending
    FROM (SELECT h.id FROM holds h
           WHERE h.bucket = ANY (buckets)
             AND h.id = ANY (ARRAY(SELECT (x->>'hold_id')::uuid FROM jsonb_array_elements(commands) x))
             AND h.status = 'pending'
           ORDER BY h.bucket, h.id
             FOR NO KEY UPDATE) l;
  IF pending IS NOT NULL THEN
    SELECT jsonb_agg(jsonb_build_object(
             'i', s.i, 'bucket', s.bucket, 'transaction_id', s.transaction_id, 'kind', 'purchase',
             'account_id', s.account_id, 'counterparty', '@revenue', 'delta', -s.captured,
             'release_held', s.released, 'hold_id', s.hold_id))
      INTO plan
      FROM (SELECT DISTINCT ON (h.id) x.i, x.transaction_id, h.bucket, h.id AS hold_id, h.account_id,
                   h.amount AS released, COALESCE(x.amount, h.amount) AS captured
              FROM jsonb_to_recordset(commands)
                   AS x(i int, bucket int, hold_id uuid, amount int8, transaction_id uuid)
              JOIN holds h ON h.bucket = x.bucket AND h.id = x.hold_id
             WHERE h.bucket = ANY (buckets) AND h.id = ANY (pending)
               AND COALESCE(x.amount, h.amount) <= h.amount
             ORDER BY h.id, x.i) s;
  END IF;
  IF plan IS NOT NULL THEN
    SELECT COALESCE(array_agg(r.o_i), '{}') INTO posted
      FROM holdfast_post(plan) r WHERE r.o_refusal IS NULL;
    UPDATE holds h
       SET status = 'settled', settled_amount = -x.delta, transaction_id = x.transaction_id,
           resolved_at = now()
      FROM jsonb_to_recordset(plan) AS x(i int, bucket int, hold_id uuid, delta int8, transaction_id uuid)
     WHERE h.bucket = ANY (buckets) AND h.bucket = x.bucket AND h.id = x.hold_id
       AND x.i = ANY (posted);
  END IF;

  -- The holds as they are now, by = ANY (a prepared plan keeps index look-ups for it, where a
  -- join could hash the whole table); the answer is then put together from them alone.
  SELECT jsonb_object_agg(h.id, to_jsonb(h)) INTO holds_now
    FROM holds h
   WHERE h.bucket = ANY (buckets)
     AND h.id = ANY (ARRAY(SELECT (x->>'hold_id')::uuid FROM jsonb_array_elements(commands) x));
  RETURN QUERY
    SELECT r.i, r.posted,
           CASE
             WHEN r.hold IS NULL THEN 'hold_not_found'
             WHEN r.posted THEN NULL
             WHEN r.settled_by > r.i THEN 'amount_exceeds_hold'
             WHEN r.hold->>'status' = 'settled' THEN NULL
             WHEN r.hold->>'status' <> 'pending' THEN 'hold_not_pending'
             WHEN r.amount > (r.hold->>'amount')::int8 THEN 'amount_exceeds_hold'
           END,
           r.hold
      FROM (SELECT x.i, x.amount, COALESCE(x.i = ANY (posted), false) AS posted,
                   (SELECT min(y.i) FROM jsonb_to_recordset(commands) AS y(i int, hold_id uuid)
                     WHERE y.hold_id = x.hold_id AND y.i = ANY (posted)) AS settled_by,
                   holds_now -> x.hold_id::text AS hold
              FROM jsonb_to_recordset(commands) AS x(i int, hold_id uuid, amount int8)) r
     ORDER BY r.i;
END;
$$;
