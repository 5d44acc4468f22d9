-- Settles many holds in one statement (settleHolds in src/reservations/settle-hold.ts).
--
-- `commands` is a JSON array of {i, hold_id, amount, transaction_id}: `amount` null settles
-- the whole hold, `transaction_id` is the id of the purchase transaction it posts. A hold asked
-- twice is settled by its first command (lowest `i`) whose amount fits; the others find it
-- settled, or are refused.
--
-- Locks are taken before anything is written, in an order every batch shares: the pending holds
-- asked for, by id, then their accounts, in byte order of their ids (COLLATE "C", as
-- holdfast_place_holds and the write path lock them). A hold is never locked after an account,
-- so two batches, or a batch and a single settle, release or expire (hold, then account),
-- cannot wait on each other in a cycle. A hold that a concurrent transaction resolved first is
-- no longer pending when its lock is granted, and is left out.
--
-- Then one statement posts every settle: each hold becomes `settled`; each account's settled
-- balance falls by the sum of its settles and `held` by the sum of their holds, once; each
-- settle gets a purchase transaction with its two entries (user → @revenue), numbered in the
-- order of `i` within its account, with the running balance after it; the @revenue stripe of
-- this backend (pid mod 16, as postingStatement picks it) takes the total. It reads the rows
-- it locked, so its snapshot, taken after the locks, sees their latest versions. The balance
-- bounds are the accounts' CHECK constraint: a settle only frees coins, so it never trips it.
--
-- One row per command, in order of `i`: whether it posted, and the hold as it is now (null when
-- there is no such hold), as jsonb with the table's column names.
CREATE FUNCTION holdfast_settle_holds(commands jsonb)
RETURNS TABLE (o_i int, o_posted boolean, o_hold jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  pending uuid[];
  posted int[];
BEGIN
  SELECT array_agg(l.id) INTO pending
    FROM (SELECT h.id FROM holds h
           WHERE h.id = ANY (ARRAY(SELECT (x->>'hold_id')::uuid FROM jsonb_array_elements(commands) x))
             AND h.status = 'pending'
           ORDER BY h.id
             FOR NO KEY UPDATE) l;
  IF pending IS NOT NULL THEN
    PERFORM 1 FROM accounts a
      WHERE a.id = ANY (ARRAY(SELECT DISTINCT h.account_id FROM holds h WHERE h.id = ANY (pending)))
      ORDER BY a.id COLLATE "C"
        FOR NO KEY UPDATE;

    WITH s AS (
      SELECT DISTINCT ON (h.id) x.i, x.transaction_id, h.id AS hold_id, h.account_id,
             h.amount AS released, COALESCE(x.amount, h.amount) AS captured
        FROM jsonb_to_recordset(commands) AS x(i int, hold_id uuid, amount int8, transaction_id uuid)
        JOIN holds h ON h.id = x.hold_id
       WHERE h.id = ANY (pending) AND COALESCE(x.amount, h.amount) <= h.amount
       ORDER BY h.id, x.i
    ),
    p AS (
      SELECT s.*, a.last_seq + row_number() OVER w AS seq,
             a.settled - sum(s.captured) OVER w AS settled_after
        FROM s JOIN accounts a ON a.id = s.account_id
      WINDOW w AS (PARTITION BY s.account_id ORDER BY s.i)
    ),
    upd_holds AS (
      UPDATE holds h
         SET status = 'settled', settled_amount = p.captured, transaction_id = p.transaction_id,
             resolved_at = now()
        FROM p
       WHERE h.id = p.hold_id
    ),
    upd_accounts AS (
      UPDATE accounts a
         SET settled = a.settled - t.captured, held = a.held - t.released,
             last_seq = a.last_seq + t.n
        FROM (SELECT account_id, sum(captured) AS captured, sum(released) AS released, count(*) AS n
                FROM s GROUP BY account_id) t
       WHERE a.id = t.account_id
    ),
    txn AS (
      INSERT INTO ledger_transactions (id, kind) SELECT p.transaction_id, 'purchase' FROM p
    ),
    ent AS (
      INSERT INTO entries (transaction_id, account_id, seq, amount, settled_after, hold_id, kind)
      SELECT e.transaction_id, e.account_id, e.seq, e.amount, e.settled_after, e.hold_id, 'purchase'
        FROM (SELECT p.transaction_id, p.account_id, p.seq, -p.captured AS amount, p.settled_after,
                     p.hold_id, p.i, 0 AS side
                FROM p
              UNION ALL
              SELECT p.transaction_id, '@revenue', NULL, p.captured, NULL, p.hold_id, p.i, 1
                FROM p) e
       ORDER BY e.i, e.side
    ),
    sys AS (
      UPDATE system_balances b
         SET settled = b.settled + (SELECT sum(p.captured) FROM p)
       WHERE b.account_id = '@revenue' AND b.stripe = pg_backend_pid() % 16
         AND EXISTS (SELECT 1 FROM p)
    )
    SELECT array_agg(p.i) INTO posted FROM p;
  END IF;

  -- A look-up per command rather than a join: the function's statements keep generic plans,
  -- and a generic plan could join by hashing the whole table.
  RETURN QUERY
    SELECT x.i, COALESCE(x.i = ANY (posted), false),
           (SELECT to_jsonb(h) FROM holds h WHERE h.id = x.hold_id)
      FROM jsonb_to_recordset(commands) AS x(i int, hold_id uuid)
     ORDER BY x.i;
END;
$$;
