-- Settles many holds in one statement (settleHolds in src/reservations/settle-hold.ts).
--
-- `commands` is a JSON array of {i, bucket, hold_id, amount, transaction_id}: `bucket` is the
-- one the hold id carries, `amount` null settles the whole hold, `transaction_id` (in the same
-- bucket) is the id of the purchase transaction it posts. A hold asked twice is settled by its
-- first command (lowest `i`) whose amount fits; the others find it settled, or are refused.
--
-- Locks are taken before anything is written, in an order every batch shares: the pending holds
-- asked for, by (bucket, id); then their accounts in lock order, (bucket, id COLLATE "C"), as
-- holdfast_place_holds and the write path lock them; then the @revenue rows of their buckets,
-- by bucket. A hold is never locked after an account, nor a user account after a system row,
-- so two batches, or a batch and a single settle, release or expire (hold, then account),
-- cannot wait on each other in a cycle. A hold that a concurrent transaction resolved first is
-- no longer pending when its lock is granted, and is left out.
--
-- Then one statement posts every settle: each hold becomes `settled`; each account's settled
-- balance falls by the sum of its settles and `held` by the sum of their holds, once; each
-- settle gets a purchase transaction with its two legs (user → @revenue), numbered in the
-- order of `i` within its account, with the running balance after it; the @revenue row of each
-- bucket takes the bucket's total. It reads the rows it locked, so its snapshot, taken after
-- the locks, sees their latest versions. The balance bounds are the accounts' CHECK
-- constraint: a settle only frees coins, so it never trips it.
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
    PERFORM 1 FROM accounts a
      JOIN (SELECT DISTINCT h.bucket, h.account_id FROM holds h
             WHERE h.bucket = ANY (buckets) AND h.id = ANY (pending)) p
        ON a.bucket = p.bucket AND a.id = p.account_id
      WHERE a.bucket = ANY (buckets)
      ORDER BY a.bucket, a.id COLLATE "C"
        FOR NO KEY UPDATE OF a;
    PERFORM 1 FROM accounts a
      WHERE a.bucket = ANY (ARRAY(SELECT DISTINCT h.bucket FROM holds h
                                   WHERE h.bucket = ANY (buckets) AND h.id = ANY (pending)))
        AND a.id = '@revenue'
      ORDER BY a.bucket
        FOR NO KEY UPDATE;

    WITH s AS (
      SELECT DISTINCT ON (h.id) x.i, x.transaction_id, h.bucket, h.id AS hold_id, h.account_id,
             h.amount AS released, COALESCE(x.amount, h.amount) AS captured
        FROM jsonb_to_recordset(commands) AS x(i int, bucket int, hold_id uuid, amount int8, transaction_id uuid)
        JOIN holds h ON h.bucket = x.bucket AND h.id = x.hold_id
       WHERE h.bucket = ANY (buckets) AND h.id = ANY (pending) AND COALESCE(x.amount, h.amount) <= h.amount
       ORDER BY h.id, x.i
    ),
    p AS (
      SELECT s.*, a.last_seq + row_number() OVER w AS seq,
             a.settled - sum(s.captured) OVER w AS settled_after
        FROM s JOIN accounts a ON a.bucket = s.bucket AND a.id = s.account_id
       WHERE a.bucket = ANY (buckets)
      WINDOW w AS (PARTITION BY s.bucket, s.account_id ORDER BY s.i)
    ),
    upd_holds AS (
      UPDATE holds h
         SET status = 'settled', settled_amount = p.captured, transaction_id = p.transaction_id,
             resolved_at = now()
        FROM p
       WHERE h.bucket = ANY (buckets) AND h.bucket = p.bucket AND h.id = p.hold_id
    ),
    upd_accounts AS (
      UPDATE accounts a
         SET settled = a.settled - t.captured, held = a.held - t.released,
             last_seq = a.last_seq + t.n
        FROM (SELECT bucket, account_id, sum(captured) AS captured, sum(released) AS released,
                     count(*) AS n
                FROM s GROUP BY bucket, account_id) t
       WHERE a.bucket = ANY (buckets) AND a.bucket = t.bucket AND a.id = t.account_id
    ),
    upd_revenue AS (
      UPDATE accounts a
         SET settled = a.settled + t.captured
        FROM (SELECT bucket, sum(captured) AS captured FROM s GROUP BY bucket) t
       WHERE a.bucket = ANY (buckets) AND a.bucket = t.bucket AND a.id = '@revenue'
    ),
    txn AS (
      INSERT INTO ledger_transactions (bucket, id, kind)
      SELECT p.bucket, p.transaction_id, 'purchase' FROM p
    ),
    ent AS (
      INSERT INTO entries (bucket, transaction_id, leg, account_id, seq, amount, settled_after, hold_id, kind)
      SELECT e.bucket, e.transaction_id, e.leg, e.account_id, e.seq, e.amount, e.settled_after, e.hold_id, 'purchase'
        FROM (SELECT p.bucket, p.transaction_id, 0 AS leg, p.account_id, p.seq, -p.captured AS amount,
                     p.settled_after, p.hold_id, p.i
                FROM p
              UNION ALL
              SELECT p.bucket, p.transaction_id, 1, '@revenue', NULL, p.captured, NULL, p.hold_id, p.i
                FROM p) e
       ORDER BY e.i, e.leg
    )
    SELECT array_agg(p.i) INTO posted FROM p;
  END IF;

  -- A look-up per command rather than a join: the function's statements keep generic plans,
  -- and a generic plan could join by hashing the whole table.
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
                   (SELECT to_jsonb(h) FROM holds h WHERE h.bucket = x.bucket AND h.id = x.hold_id) AS hold
              FROM jsonb_to_recordset(commands) AS x(i int, bucket int, hold_id uuid, amount int8)) r
     ORDER BY r.i;
END;
$$;
