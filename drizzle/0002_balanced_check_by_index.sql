-- The balance check looked the statement's transactions up in `entries` with a plan that
-- scanned the whole table: O(history) per posting. It now sums the statement's own rows and
-- only counts each transaction's entries through the entries_transaction index, which still
-- catches entries added to an existing transaction by a later statement.
CREATE OR REPLACE FUNCTION holdfast_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad uuid;
BEGIN
  SELECT n.transaction_id INTO bad
    FROM (SELECT transaction_id, sum(amount) AS total, count(*) AS entries
            FROM new_entries GROUP BY transaction_id) n
   WHERE n.total <> 0 OR n.entries < 2
      OR (SELECT count(*) FROM entries e WHERE e.transaction_id = n.transaction_id) <> n.entries
   LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'holdfast: ledger transaction % is not balanced', bad
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END;
$$;
