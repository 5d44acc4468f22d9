-- Each ledger transaction that a statement writes entries for must get both its legs (0: the
-- user account, 1: the system account) from that statement, summing to zero. The unique index
-- on (bucket, transaction_id, leg) keeps a later statement from adding to it. The check reads
-- only the statement's own rows, so on Citus it runs on the shard that holds them.
CREATE OR REPLACE FUNCTION holdfast_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad uuid;
BEGIN
  SELECT n.transaction_id INTO bad
    FROM new_entries n
   GROUP BY n.bucket, n.transaction_id
  HAVING sum(n.amount) <> 0 OR count(*) <> 2
   LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'holdfast: ledger transaction % is not balanced', bad
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END;
$$;
