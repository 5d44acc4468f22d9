CREATE TABLE "promotion_allotments" (
	"bucket" integer NOT NULL,
	"promotion_code" text NOT NULL,
	"allotted" integer,
	"redeemed" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "promotion_allotments_bucket_promotion_code_pk" PRIMARY KEY("bucket","promotion_code"),
	CONSTRAINT "promotion_allotments_within" CHECK ("promotion_allotments"."redeemed" >= 0 AND ("promotion_allotments"."allotted" IS NULL OR "promotion_allotments"."redeemed" <= "promotion_allotments"."allotted"))
);
--> statement-breakpoint
ALTER TABLE "promotions" DROP CONSTRAINT "promotions_redemption_cap";--> statement-breakpoint
ALTER TABLE "promotion_allotments" ADD CONSTRAINT "promotion_allotments_promotion_code_promotions_code_fk" FOREIGN KEY ("promotion_code") REFERENCES "public"."promotions"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- A promotion's redemptions so far become the count of its row in bucket 0, with all of its cap:
-- on plain Postgres the one shard's home; on Citus other shards take their share when they
-- first redeem it (holdfast_count_redemption).
INSERT INTO promotion_allotments (bucket, promotion_code, allotted, redeemed)
SELECT 0, code, max_redemptions, redemptions FROM promotions;--> statement-breakpoint
ALTER TABLE "promotions" DROP COLUMN "redemptions";--> statement-breakpoint
-- Unqualified columns: Citus cannot add a CHECK on a distributed or reference table whose
-- columns name their table.
ALTER TABLE "promotions" ADD CONSTRAINT "promotions_redemption_cap" CHECK (max_redemptions IS NULL OR max_redemptions >= 1);--> statement-breakpoint
DROP FUNCTION holdfast_redeem(text, int, text, uuid);--> statement-breakpoint
-- Counts one redemption of a promotion on the shard whose home bucket is p_home (Shards.home),
-- for holdfast_redeem, which holds the redeeming account's lock; answers false, counting
-- nothing, when a capped promotion is at its cap.
--
-- Each shard counts in its own row of promotion_allotments, so a redemption writes on its
-- account's shard only. A capped promotion's cap is split between its rows (`allotted`, summed
-- to max_redemptions; see createPromotion), and the row's CHECK keeps its count within its
-- allotment, so the promotion never passes its cap.
--
-- The common case is one conditional UPDATE of the home row, tried only when a plain read
-- shows spare. If it then finds none (the last of it went meanwhile), it may hold the row's
-- lock (an UPDATE whose recheck fails keeps the lock), so it fails with serialization_failure
-- and the write path runs the redemption again: the slow path below must start holding no row.
--
-- The slow path, when the home row has used its allotment or this shard has no row yet, locks
-- every row of the promotion, one at a time in bucket order, until a new listing finds no row
-- it has not locked (rows are never deleted, and a row is only made by a slow path, which
-- needs the locks this one holds). Under those locks it sees the whole remaining cap: none
-- left means at the cap, exactly; else half the largest spare (rounded up) moves to the home
-- row, made if missing, and the redemption counts there (if a move to the home row came first,
-- it counts there without one). It is the only redemption path that writes on more than one
-- shard (a two-phase commit on Citus), once a shard has used its share.
--
-- No lock cycle: the caller holds its account and no other; the fast path then waits for one
-- row; slow paths take rows in one order; and no holder of a row waits for an account.
CREATE OR REPLACE FUNCTION holdfast_count_redemption(p_code text, p_home int, p_capped boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  b int;
  listed int[];
  locked int[] := '{}';
  r record;
  home_spare int := 0;
  donor int;
  donor_spare int := 0;
  take int;
BEGIN
  IF NOT p_capped THEN
    INSERT INTO promotion_allotments (bucket, promotion_code, redeemed)
    VALUES (p_home, p_code, 1)
    ON CONFLICT (bucket, promotion_code)
    DO UPDATE SET redeemed = promotion_allotments.redeemed + 1;
    RETURN true;
  END IF;
  SELECT a.allotted - a.redeemed INTO home_spare FROM promotion_allotments a
   WHERE a.bucket = p_home AND a.promotion_code = p_code;
  IF home_spare > 0 THEN
    UPDATE promotion_allotments SET redeemed = redeemed + 1
     WHERE bucket = p_home AND promotion_code = p_code AND redeemed < allotted;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'the allotment of promotion % in bucket % went meanwhile', p_code, p_home
        USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
  END IF;
  home_spare := 0;

  LOOP
    listed := '{}';
    FOR b IN SELECT a.bucket FROM promotion_allotments a
              WHERE a.promotion_code = p_code ORDER BY a.bucket LOOP
      listed := listed || b;
    END LOOP;
    EXIT WHEN listed = locked;
    FOREACH b IN ARRAY listed LOOP
      PERFORM 1 FROM promotion_allotments a
        WHERE a.bucket = b AND a.promotion_code = p_code FOR NO KEY UPDATE;
    END LOOP;
    locked := listed;
  END LOOP;
  FOR r IN SELECT a.bucket, a.allotted - a.redeemed AS spare FROM promotion_allotments a
            WHERE a.promotion_code = p_code LOOP
    IF r.bucket = p_home THEN
      home_spare := r.spare;
    ELSIF r.spare > donor_spare THEN
      donor := r.bucket;
      donor_spare := r.spare;
    END IF;
  END LOOP;
  IF home_spare = 0 AND donor_spare = 0 THEN
    RETURN false;
  END IF;
  take := CASE WHEN home_spare > 0 THEN 0 ELSE (donor_spare + 1) / 2 END;
  IF take > 0 THEN
    UPDATE promotion_allotments SET allotted = allotted - take
     WHERE bucket = donor AND promotion_code = p_code;
  END IF;
  INSERT INTO promotion_allotments (bucket, promotion_code, allotted, redeemed)
  VALUES (p_home, p_code, take, 1)
  ON CONFLICT (bucket, promotion_code)
  DO UPDATE SET allotted = promotion_allotments.allotted + EXCLUDED.allotted,
                redeemed = promotion_allotments.redeemed + 1;
  RETURN true;
END;
$$;
--> statement-breakpoint
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
