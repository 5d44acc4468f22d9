-- Every row written on behalf of an account gets the account's bucket, the distribution key
-- (src/db/schema/bucket.ts). System accounts get a row in every bucket, holding the balance of
-- the postings of that bucket's user accounts; system_balances, striped by backend, goes.
-- Holds and ledger transactions created before this migration keep their ids, which do not
-- carry their bucket, so an old hold is no longer found by its id: the migration refuses to
-- run while a hold is pending. Idempotency keys now belong to the resource their request
-- names; those stored before are kept in bucket 0 with no resource, so a retry of one of those
-- requests after the upgrade is not recognised: upgrade with no traffic in flight and no
-- retries due.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM holds WHERE status = 'pending') THEN
    RAISE EXCEPTION 'holdfast: settle or release every pending hold before this upgrade'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END;
$$;
--> statement-breakpoint
-- The bucket of an account id: the first 12 bits of its MD5. bucketOf in src/ledger/ids.ts
-- computes the same (test/db/buckets.test.ts checks that they agree).
CREATE OR REPLACE FUNCTION holdfast_bucket(account_id text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT (get_byte(decode(md5(account_id), 'hex'), 0) * 16
          + get_byte(decode(md5(account_id), 'hex'), 1) / 16)::integer
$$;
--> statement-breakpoint
ALTER TABLE "entries" DROP CONSTRAINT "entries_transaction_id_ledger_transactions_id_fk";
ALTER TABLE "entries" DROP CONSTRAINT "entries_account_id_accounts_id_fk";
ALTER TABLE "holds" DROP CONSTRAINT "holds_account_id_accounts_id_fk";
ALTER TABLE "holds" DROP CONSTRAINT "holds_transaction_id_ledger_transactions_id_fk";
ALTER TABLE "redemptions" DROP CONSTRAINT "redemptions_account_id_accounts_id_fk";
ALTER TABLE "redemptions" DROP CONSTRAINT "redemptions_transaction_id_ledger_transactions_id_fk";
DROP TABLE "system_balances" CASCADE;
ALTER TABLE "accounts" DROP CONSTRAINT "accounts_system_balance_elsewhere";
ALTER TABLE "accounts" DROP CONSTRAINT "accounts_pkey";
ALTER TABLE "entries" DROP CONSTRAINT "entries_pkey";
ALTER TABLE "holds" DROP CONSTRAINT "holds_pkey";
ALTER TABLE "ledger_transactions" DROP CONSTRAINT "ledger_transactions_pkey";
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_role_key_pk";
ALTER TABLE "redemptions" DROP CONSTRAINT "redemptions_promotion_code_account_id_pk";
DROP INDEX "entries_transaction";
DROP INDEX "entries_account_seq";
ALTER TABLE entries DISABLE TRIGGER entries_append_only;
ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_append_only;
ALTER TABLE holds DISABLE TRIGGER holds_terminal_never_change
--> statement-breakpoint
ALTER TABLE "accounts" ADD COLUMN "bucket" integer;
ALTER TABLE "entries" ADD COLUMN "bucket" integer, ADD COLUMN "leg" smallint;
ALTER TABLE "holds" ADD COLUMN "bucket" integer;
ALTER TABLE "idempotency_keys" ADD COLUMN "bucket" integer, ADD COLUMN "scope" text;
ALTER TABLE "ledger_transactions" ADD COLUMN "bucket" integer;
ALTER TABLE "redemptions" ADD COLUMN "bucket" integer;
UPDATE accounts SET bucket = holdfast_bucket(id);
UPDATE ledger_transactions t SET bucket = a.bucket
  FROM entries e JOIN accounts a ON a.id = e.account_id AND a.kind = 'user'
 WHERE e.transaction_id = t.id;
UPDATE entries e SET bucket = t.bucket, leg = CASE WHEN e.account_id LIKE '@%' THEN 1 ELSE 0 END
  FROM ledger_transactions t WHERE t.id = e.transaction_id;
UPDATE holds SET bucket = holdfast_bucket(account_id);
UPDATE redemptions SET bucket = holdfast_bucket(account_id);
UPDATE idempotency_keys SET bucket = 0, scope = '';
DELETE FROM accounts WHERE kind = 'system';
INSERT INTO accounts (bucket, id, kind, settled)
SELECT b, s.id, 'system',
       COALESCE((SELECT sum(e.amount) FROM entries e WHERE e.bucket = b AND e.account_id = s.id), 0)
  FROM (VALUES ('@issuance'), ('@revenue'), ('@promotions')) AS s(id),
       generate_series(0, 4095) AS b
--> statement-breakpoint
ALTER TABLE "accounts" ALTER COLUMN "bucket" SET NOT NULL;
ALTER TABLE "entries" ALTER COLUMN "bucket" SET NOT NULL, ALTER COLUMN "leg" SET NOT NULL;
ALTER TABLE "holds" ALTER COLUMN "bucket" SET NOT NULL;
ALTER TABLE "idempotency_keys" ALTER COLUMN "bucket" SET NOT NULL, ALTER COLUMN "scope" SET NOT NULL;
ALTER TABLE "ledger_transactions" ALTER COLUMN "bucket" SET NOT NULL;
ALTER TABLE "redemptions" ALTER COLUMN "bucket" SET NOT NULL
--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_bucket_id_pk" PRIMARY KEY("bucket","id");
ALTER TABLE "entries" ADD CONSTRAINT "entries_bucket_id_pk" PRIMARY KEY("bucket","id");
ALTER TABLE "holds" ADD CONSTRAINT "holds_bucket_id_pk" PRIMARY KEY("bucket","id");
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_bucket_role_scope_key_pk" PRIMARY KEY("bucket","role","scope","key");
ALTER TABLE "ledger_transactions" ADD CONSTRAINT "ledger_transactions_bucket_id_pk" PRIMARY KEY("bucket","id");
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_bucket_promotion_code_account_id_pk" PRIMARY KEY("bucket","promotion_code","account_id");
ALTER TABLE "entries" ADD CONSTRAINT "entries_bucket_transaction_id_ledger_transactions_bucket_id_fk" FOREIGN KEY ("bucket","transaction_id") REFERENCES "public"."ledger_transactions"("bucket","id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "entries" ADD CONSTRAINT "entries_bucket_account_id_accounts_bucket_id_fk" FOREIGN KEY ("bucket","account_id") REFERENCES "public"."accounts"("bucket","id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "holds" ADD CONSTRAINT "holds_bucket_account_id_accounts_bucket_id_fk" FOREIGN KEY ("bucket","account_id") REFERENCES "public"."accounts"("bucket","id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "holds" ADD CONSTRAINT "holds_bucket_transaction_id_ledger_transactions_bucket_id_fk" FOREIGN KEY ("bucket","transaction_id") REFERENCES "public"."ledger_transactions"("bucket","id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_bucket_account_id_accounts_bucket_id_fk" FOREIGN KEY ("bucket","account_id") REFERENCES "public"."accounts"("bucket","id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_bucket_transaction_id_ledger_transactions_bucket_id_fk" FOREIGN KEY ("bucket","transaction_id") REFERENCES "public"."ledger_transactions"("bucket","id") ON DELETE no action ON UPDATE no action;
CREATE INDEX "accounts_id" ON "accounts" USING btree ("id");
CREATE UNIQUE INDEX "entries_transaction_leg" ON "entries" USING btree ("bucket","transaction_id","leg");
CREATE UNIQUE INDEX "entries_account_seq" ON "entries" USING btree ("bucket","account_id","seq");
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_user_in_own_bucket" CHECK ("accounts"."kind" = 'system' OR "accounts"."bucket" = holdfast_bucket("accounts"."id"));
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_system_holds_nothing" CHECK ("accounts"."kind" = 'user' OR "accounts"."held" = 0);
ALTER TABLE "entries" ADD CONSTRAINT "entries_leg" CHECK ("entries"."leg" IN (0, 1) AND ("entries"."leg" = 1) = ("entries"."account_id" LIKE '@%'));
--> statement-breakpoint
ALTER TABLE entries ENABLE TRIGGER entries_append_only;
ALTER TABLE ledger_transactions ENABLE TRIGGER ledger_transactions_append_only;
ALTER TABLE holds ENABLE TRIGGER holds_terminal_never_change
--> statement-breakpoint
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
--> statement-breakpoint
DROP FUNCTION holdfast_place_holds(jsonb);
DROP FUNCTION holdfast_settle_holds(jsonb)
--> statement-breakpoint
-- Places the holds of many purchases in one statement (placeHolds in src/reservations/place-hold.ts).
--
-- `commands` is a JSON array of {i, id, bucket, account_id, amount, order_id, description,
-- metadata, seconds}; `id` carries `bucket`, the account's. Accounts are locked in lock order,
-- (bucket, id COLLATE "C"), as every batch of the write path locks them, so concurrent batches
-- cannot deadlock. FOR NO KEY UPDATE is the lock an UPDATE of `held` takes: it leaves
-- foreign-key checks on the account free. Each account's purchases are decided one after the
-- other in the order of `i`, as if applied serially: a purchase fits if it is at most what the
-- account has available after the purchases before it that fitted. The account's `held` then
-- grows once, by their sum, and the holds that fitted are inserted by one INSERT.
--
-- A function rather than one statement of CTEs: in READ COMMITTED every statement of a
-- function takes a new snapshot, so the UPDATE after the SELECT … FOR NO KEY UPDATE sees the row
-- it locked. In a single statement, an UPDATE of a row that a concurrent transaction changed
-- before the CTE's FOR UPDATE took it computes from the statement's older snapshot.
--
-- One row per command: its refusal (account_not_found, insufficient_funds) or null,
-- free_before (what was available when it was decided), and for a placed hold the account
-- after it and the hold's timestamps and metadata.
CREATE OR REPLACE FUNCTION holdfast_place_holds(commands jsonb)
RETURNS TABLE (
  o_i int,
  o_refusal text,
  o_free_before int8,
  o_settled int8,
  o_held_after int8,
  o_account_metadata jsonb,
  o_account_created_at timestamptz,
  o_expires_at timestamptz,
  o_created_at timestamptz,
  o_hold_metadata jsonb
) LANGUAGE plpgsql AS $$
DECLARE
  c record;
  current_bucket int;
  current_account text;
  found_account boolean := false;
  acct record;
  free int8;
  held_now int8;
  reserved int8 := 0;
  accepted int[] := '{}';
BEGIN
  FOR c IN
    SELECT x.*
      FROM jsonb_to_recordset(commands) AS x(
             i int, id uuid, bucket int, account_id text, amount int8, order_id text,
             description text, metadata jsonb, seconds int)
     ORDER BY x.bucket, x.account_id COLLATE "C", x.i
  LOOP
    IF current_account IS DISTINCT FROM c.account_id THEN
      IF reserved > 0 THEN
        UPDATE accounts SET held = accounts.held + reserved
         WHERE accounts.bucket = current_bucket AND accounts.id = current_account;
      END IF;
      current_bucket := c.bucket;
      current_account := c.account_id;
      reserved := 0;
      SELECT a.settled, a.held, a.metadata, a.created_at INTO acct
        FROM accounts a
       WHERE a.bucket = c.bucket AND a.id = c.account_id AND a.kind = 'user'
         FOR NO KEY UPDATE;
      found_account := FOUND;
      IF found_account THEN
        free := acct.settled - acct.held;
        held_now := acct.held;
      END IF;
    END IF;

    o_i := c.i;
    o_refusal := NULL;
    o_free_before := NULL;
    o_settled := NULL;
    o_held_after := NULL;
    o_account_metadata := NULL;
    o_account_created_at := NULL;
    o_expires_at := NULL;
    o_created_at := NULL;
    o_hold_metadata := NULL;
    IF NOT found_account THEN
      o_refusal := 'account_not_found';
    ELSE
      o_free_before := free;
      IF c.amount > free THEN
        o_refusal := 'insufficient_funds';
      ELSE
        free := free - c.amount;
        held_now := held_now + c.amount;
        reserved := reserved + c.amount;
        accepted := accepted || c.i;
        o_settled := acct.settled;
        o_held_after := held_now;
        o_account_metadata := acct.metadata;
        o_account_created_at := acct.created_at;
        -- As the columns store them (milliseconds), so the answer matches a later read.
        o_expires_at := (now() + make_interval(secs => c.seconds))::timestamptz(3);
        o_created_at := now()::timestamptz(3);
        -- As jsonb stores it (keys reordered), so the answer matches a later read.
        o_hold_metadata := c.metadata;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;

  IF reserved > 0 THEN
    UPDATE accounts SET held = accounts.held + reserved
     WHERE accounts.bucket = current_bucket AND accounts.id = current_account;
  END IF;

  INSERT INTO holds (bucket, id, account_id, amount, order_id, description, metadata, expires_at, created_at)
  SELECT x.bucket, x.id, x.account_id, x.amount, x.order_id, x.description, x.metadata,
         now() + make_interval(secs => x.seconds), now()
    FROM jsonb_to_recordset(commands) AS x(
           i int, id uuid, bucket int, account_id text, amount int8, order_id text,
           description text, metadata jsonb, seconds int)
   WHERE x.i = ANY (accepted);
END;
$$;
--> statement-breakpoint
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
