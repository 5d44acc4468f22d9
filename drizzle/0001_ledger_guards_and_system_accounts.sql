-- The ledger's invariants, enforced by the database as well as by the code.

-- Entries and ledger transactions are append-only: a correction is a new transaction.
CREATE FUNCTION holdfast_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'holdfast: % on % is not allowed (append-only)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION holdfast_refuse_change();
--> statement-breakpoint
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast_refuse_change();
--> statement-breakpoint
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION holdfast_refuse_change();
--> statement-breakpoint
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast_refuse_change();
--> statement-breakpoint
-- Every ledger transaction's entries are inserted by one statement; that statement must
-- leave each transaction it touches with two or more entries summing to zero.
CREATE FUNCTION holdfast_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad uuid;
BEGIN
  SELECT e.transaction_id INTO bad
    FROM entries e
   WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
   GROUP BY e.transaction_id
  HAVING sum(e.amount) <> 0 OR count(*) < 2
   LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'holdfast: ledger transaction % is not balanced', bad
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
  REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast_check_balanced();
--> statement-breakpoint
-- A hold leaves 'pending' once; after that it never changes, and holds are never deleted.
CREATE FUNCTION holdfast_hold_terminal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'holdfast: holds are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.status <> 'pending' THEN
    RAISE EXCEPTION 'holdfast: hold % is % and cannot change', OLD.id, OLD.status
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.id <> OLD.id OR NEW.account_id <> OLD.account_id OR NEW.amount <> OLD.amount
     OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'holdfast: a hold''s identity, account and amount never change'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER holds_terminal_never_change BEFORE UPDATE OR DELETE ON holds
  FOR EACH ROW EXECUTE FUNCTION holdfast_hold_terminal();
--> statement-breakpoint
INSERT INTO accounts (id, kind) VALUES ('@issuance', 'system'), ('@revenue', 'system'), ('@promotions', 'system');
--> statement-breakpoint
INSERT INTO system_balances (account_id, stripe)
  SELECT a.id, s FROM accounts a CROSS JOIN generate_series(0, 15) AS s WHERE a.kind = 'system';
