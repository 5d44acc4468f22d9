-- A hold leaves 'pending' once; after that it never changes, but for a settled hold's
-- refunded_amount, which only grows (src/db/sql/refund_holds.sql); holds are never deleted.
CREATE OR REPLACE FUNCTION holdfast_hold_terminal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'holdfast: holds are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.status = 'settled' AND NEW.refunded_amount > OLD.refunded_amount
     AND to_jsonb(NEW) - 'refunded_amount' = to_jsonb(OLD) - 'refunded_amount' THEN
    RETURN NEW;
  END IF;
  IF OLD.status <> 'pending' THEN
    RAISE EXCEPTION 'holdfast: hold % is % and cannot change', OLD.id, OLD.status
      USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.id <> OLD.id OR NEW.account_id <> OLD.account_id OR NEW.amount <> OLD.amount
     OR NEW.created_at <> OLD.created_at OR NEW.refunded_amount <> OLD.refunded_amount THEN
    RAISE EXCEPTION 'holdfast: a hold''s identity, account, amount and refunds never change while pending'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END;
$$;
