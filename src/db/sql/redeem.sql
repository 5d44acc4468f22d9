-- Redeems a promotion on an account (redeemPromotion in src/ledger/redeem-promotion.ts): credits
-- settled × (multiplier − 1) from @promotions through holdfast_post, with settled read under the
-- account's row lock, so the credit is decided at one position in the account's sequence and is
-- what a serial order would give. Pending holds are neither counted nor touched.
--
-- The promotion is read, not locked: on Citus it is a reference table, a copy on every node,
-- and a write to it is a write on every node. Under the account's lock it decides, in this
-- order: promotion_not_found, account_not_found, promotion_already_redeemed,
-- promotion_inactive (not started, ended, or at its cap), and through holdfast_post
-- balance_limit_exceeded. The cap is decided by counting the redemption with
-- holdfast_count_redemption (count_redemption.sql), on the account's shard; a refusal after it
-- (balance_limit_exceeded) is undone with the caller's transaction, as every refusal's writes
-- are, so a refusal writes nothing. An account with nothing settled redeems with credited 0 and
-- no ledger transaction (a transaction cannot have zero entries), and uses up its redemption.
-- The redemption row is written after its ledger transaction (its foreign key is checked at
-- once on Citus); the primary key backs "once per account".
--
-- One row: the refusal or null (for promotion_inactive, why: not_started, ended, exhausted),
-- what the refusal's message needs, the redemption and the account after it.
CREATE OR REPLACE FUNCTION holdfast_redeem(p_code text, p_bucket int, p_home int,
                                           p_account text, p_transaction_id uuid)
RETURNS TABLE (
  o_refusal text,
  o_inactive text,
  o_starts_at timestamptz,
  o_ends_at timestamptz,
  o_max_redemptions int,
  o_basis int8,
  o_credited int8,
  o_transaction_id uuid,
  o_created_at timestamptz,
  o_settled int8,
  o_held int8,
  o_metadata jsonb,
  o_account_created_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
  promo record;
  acct record;
  posted record;
BEGIN
  SELECT p.* INTO promo FROM promotions p WHERE p.code = p_code;
  IF NOT FOUND THEN
    o_refusal := 'promotion_not_found';
    RETURN NEXT;
    RETURN;
  END IF;
  o_starts_at := promo.starts_at;
  o_ends_at := promo.ends_at;
  o_max_redemptions := promo.max_redemptions;
  SELECT a.settled, a.held, a.metadata, a.created_at INTO acct
    FROM accounts a
   WHERE a.bucket = p_bucket AND a.id = p_account AND a.kind = 'user'
     FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    o_refusal := 'account_not_found';
  ELSIF EXISTS (SELECT 1 FROM redemptions r
                 WHERE r.bucket = p_bucket AND r.promotion_code = p_code
                   AND r.account_id = p_account) THEN
    o_refusal := 'promotion_already_redeemed';
  ELSIF promo.starts_at IS NOT NULL AND now() < promo.starts_at THEN
    o_refusal := 'promotion_inactive';
    o_inactive := 'not_started';
  ELSIF promo.ends_at IS NOT NULL AND now() >= promo.ends_at THEN
    o_refusal := 'promotion_inactive';
    o_inactive := 'ended';
  ELSIF NOT holdfast_count_redemption(p_code, p_home, promo.max_redemptions IS NOT NULL) THEN
    o_refusal := 'promotion_inactive';
    o_inactive := 'exhausted';
  END IF;
  IF o_refusal IS NOT NULL THEN
    RETURN NEXT;
    RETURN;
  END IF;

  o_basis := acct.settled;
  o_credited := acct.settled * (promo.multiplier - 1);
  o_settled := acct.settled;
  o_held := acct.held;
  IF o_basis > 0 THEN
    SELECT r.* INTO posted
      FROM holdfast_post(jsonb_build_array(jsonb_build_object(
             'i', 0, 'bucket', p_bucket, 'transaction_id', p_transaction_id, 'kind', 'promotion',
             'account_id', p_account, 'counterparty', '@promotions', 'delta', o_credited,
             'release_held', 0, 'reason', 'promotion ' || p_code,
             'metadata', jsonb_build_object('promotion', p_code)))) r;
    IF posted.o_refusal IS NOT NULL THEN
      o_refusal := posted.o_refusal;
      RETURN NEXT;
      RETURN;
    END IF;
    o_transaction_id := p_transaction_id;
    o_settled := posted.o_settled;
    o_held := posted.o_held;
  END IF;
  o_metadata := acct.metadata;
  o_account_created_at := acct.created_at;
  INSERT INTO redemptions (bucket, promotion_code, account_id, basis, credited, transaction_id)
  VALUES (p_bucket, p_code, p_account, o_basis, o_credited, o_transaction_id)
  RETURNING created_at INTO o_created_at;
  RETURN NEXT;
END;
$$;
