-- Custom SQL migration file, put your code below! --
-- Ends pending holds without posting anything: released (releaseHold), expired (expireHold, and
-- the sweep's expireOverdueHolds). Beside a settle's release_held in the posting core
-- (post.sql), the one place where a hold's amount leaves its account's held balance.
--
-- `p_buckets` and `p_ids` name the holds (their buckets, which their ids carry; on Citus those
-- of one shard). The holds still pending, and for 'expired' past their deadline by the
-- database's clock, are locked by (bucket, id), then their accounts in lock order (bucket, id
-- COLLATE "C"): hold, then account, as every path that ends a hold, so none waits on another in
-- a cycle (accounts updated by one statement would be locked in no set order). Then the holds
-- leave pending and each account's held drops by the sum of its ended holds. Plain statements,
-- each routed to the holds' shard on Citus. Returns the holds it ended, as they are now; a hold
-- not found or no longer pending is left out.
CREATE OR REPLACE FUNCTION holdfast_end_holds(p_buckets int[], p_ids uuid[], p_status text,
                                              p_reason text)
RETURNS SETOF holds LANGUAGE plpgsql AS $$
DECLARE
  due uuid[];
BEGIN
  SELECT array_agg(l.id) INTO due
    FROM (SELECT h.id FROM holds h
           WHERE h.bucket = ANY (p_buckets) AND h.id = ANY (p_ids) AND h.status = 'pending'
             AND (p_status <> 'expired' OR h.expires_at <= now())
           ORDER BY h.bucket, h.id
             FOR NO KEY UPDATE) l;
  IF due IS NULL THEN
    RETURN;
  END IF;
  PERFORM 1 FROM accounts a
   WHERE a.bucket = ANY (p_buckets)
     AND a.id = ANY (ARRAY(SELECT h.account_id FROM holds h
                            WHERE h.bucket = ANY (p_buckets) AND h.id = ANY (due)))
   ORDER BY a.bucket, a.id COLLATE "C"
     FOR NO KEY UPDATE;
  UPDATE holds SET status = p_status, reason = p_reason, resolved_at = now()
   WHERE bucket = ANY (p_buckets) AND id = ANY (due);
  UPDATE accounts a SET held = a.held - s.amount
    FROM (SELECT h.bucket, h.account_id, sum(h.amount) AS amount FROM holds h
           WHERE h.bucket = ANY (p_buckets) AND h.id = ANY (due)
           GROUP BY h.bucket, h.account_id) s
   WHERE a.bucket = ANY (p_buckets) AND a.bucket = s.bucket AND a.id = s.account_id;
  RETURN QUERY SELECT * FROM holds h WHERE h.bucket = ANY (p_buckets) AND h.id = ANY (due);
END;
$$;
