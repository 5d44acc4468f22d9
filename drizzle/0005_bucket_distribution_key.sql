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
-- Inserts `rows` (a JSON array of objects with the same keys, the target's column names) into
-- `target` with one statement. On plain Postgres: INSERT … SELECT from the rows as the target's
-- record type. On Citus: one multi-row INSERT … VALUES, which is routed to the shard of its rows,
-- where INSERT … SELECT from a function goes through the coordinator by COPY, and a COPY after
-- another write in the transaction makes it commit in two phases.
CREATE OR REPLACE FUNCTION holdfast_insert_rows(target regclass, rows jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  columns text;
BEGIN
  SELECT string_agg(quote_ident(k), ', ') INTO columns FROM jsonb_object_keys(rows->0) AS k;
  IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1)',
                   target, columns, columns, target)
      USING rows;
    RETURN;
  END IF;
  EXECUTE format(
    'INSERT INTO %s (%s) VALUES %s', target, columns,
    (SELECT string_agg(
              '(' || (SELECT string_agg(quote_nullable(r->>k), ', ')
                        FROM jsonb_object_keys(rows->0) AS k) || ')',
              ', ' ORDER BY n)
       FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(r, n)));
END;
$$;
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
-- grows once, by their sum, and the holds that fitted are inserted by one INSERT (holdfast_insert_rows).
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

  IF cardinality(accepted) > 0 THEN
    PERFORM holdfast_insert_rows('holds', jsonb_agg(jsonb_build_object(
              'bucket', x.bucket, 'id', x.id, 'account_id', x.account_id, 'amount', x.amount,
              'order_id', x.order_id, 'description', x.description, 'metadata', x.metadata,
              'expires_at', now() + make_interval(secs => x.seconds), 'created_at', now())
              ORDER BY x.i))
       FROM jsonb_to_recordset(commands) AS x(
              i int, id uuid, bucket int, account_id text, amount int8, order_id text,
              description text, metadata jsonb, seconds int)
      WHERE x.i = ANY (accepted);
  END IF;
END;
$$;
--> statement-breakpoint
-- The one posting core (credits, settles' purchases, promotions): posts many two-legged ledger
-- transactions between user accounts and system accounts, each decided at its position in its
-- account's sequence.
--
-- `postings` is a JSON array of {i, bucket, transaction_id, kind, account_id, counterparty,
-- delta, release_held, hold_id, reason, metadata}: `delta` is added to the user account's
-- settled balance and taken from the counterparty's row in the same bucket, `release_held` is
-- taken off the user's held balance. A posting is refused, and writes nothing, when its account
-- is not a user account (account_not_found), when it would leave settled below held
-- (insufficient_funds) or above 2^53 − 1 (balance_limit_exceeded). Each account's postings are
-- decided one after the other in the order of `i`, as if applied serially.
--
-- Locks are taken in lock order: the user accounts by (bucket, id COLLATE "C"), then the system
-- rows by bucket; a caller that locked rows before (holds, a promotion) locked nothing after an
-- account. Plain statements one after the other, not one statement of CTEs: on Citus each of them
-- is routed to the shard of its buckets (a batch's postings share one shard), where a statement
-- of CTEs is planned apart, its intermediate results sent to every worker, and the transaction
-- committed in two phases. The rows a foreign key refers to are written first.
--
-- One row per posting, in order of `i`: its refusal or null, and the account after it.
CREATE OR REPLACE FUNCTION holdfast_post(postings jsonb)
RETURNS TABLE (
  o_i int,
  o_refusal text,
  o_settled int8,
  o_held int8,
  o_last_seq int8,
  o_metadata jsonb,
  o_created_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
  p record;
  acct record;
  buckets int[];
  found_account boolean := false;
  current_bucket int;
  current_account text;
  settled_now int8;
  held_now int8;
  seq_now int8;
  accepted_i int[] := '{}';
  accepted_seq int8[] := '{}';
  accepted_after int8[] := '{}';
  accepted jsonb;
BEGIN
  SELECT array_agg(DISTINCT (x->>'bucket')::int) INTO buckets FROM jsonb_array_elements(postings) x;
  FOR p IN
    SELECT x.*
      FROM jsonb_to_recordset(postings) AS x(
             i int, bucket int, transaction_id uuid, kind text, account_id text, counterparty text,
             delta int8, release_held int8, hold_id uuid, reason text, metadata jsonb)
     ORDER BY x.bucket, x.account_id COLLATE "C", x.i
  LOOP
    IF current_account IS DISTINCT FROM p.account_id OR current_bucket IS DISTINCT FROM p.bucket THEN
      IF found_account THEN
        UPDATE accounts SET settled = settled_now, held = held_now, last_seq = seq_now
         WHERE accounts.bucket = current_bucket AND accounts.id = current_account;
      END IF;
      current_bucket := p.bucket;
      current_account := p.account_id;
      SELECT a.settled, a.held, a.last_seq, a.metadata, a.created_at INTO acct
        FROM accounts a
       WHERE a.bucket = p.bucket AND a.id = p.account_id AND a.kind = 'user'
         FOR NO KEY UPDATE;
      found_account := FOUND;
      IF found_account THEN
        settled_now := acct.settled;
        held_now := acct.held;
        seq_now := acct.last_seq;
      END IF;
    END IF;

    o_i := p.i;
    o_refusal := NULL;
    o_settled := NULL;
    o_held := NULL;
    o_last_seq := NULL;
    o_metadata := NULL;
    o_created_at := NULL;
    IF NOT found_account THEN
      o_refusal := 'account_not_found';
    ELSIF settled_now + p.delta < held_now - p.release_held THEN
      o_refusal := 'insufficient_funds';
    ELSIF settled_now + p.delta > 9007199254740991 THEN
      o_refusal := 'balance_limit_exceeded';
    ELSE
      settled_now := settled_now + p.delta;
      held_now := held_now - p.release_held;
      seq_now := seq_now + 1;
      accepted_i := accepted_i || p.i;
      accepted_seq := accepted_seq || seq_now;
      accepted_after := accepted_after || settled_now;
      o_settled := settled_now;
      o_held := held_now;
      o_last_seq := seq_now;
      o_metadata := acct.metadata;
      o_created_at := acct.created_at;
    END IF;
    RETURN NEXT;
  END LOOP;
  IF found_account THEN
    UPDATE accounts SET settled = settled_now, held = held_now, last_seq = seq_now
     WHERE accounts.bucket = current_bucket AND accounts.id = current_account;
  END IF;
  IF cardinality(accepted_i) = 0 THEN
    RETURN;
  END IF;
  -- The accepted postings, each with its place in its account's sequence.
  SELECT jsonb_agg(x.p || jsonb_build_object('seq', a.seq, 'settled_after', a.after) ORDER BY a.n)
    INTO accepted
    FROM unnest(accepted_i, accepted_seq, accepted_after) WITH ORDINALITY AS a(i, seq, after, n)
    JOIN jsonb_array_elements(postings) AS x(p) ON (x.p->>'i')::int = a.i;

  PERFORM holdfast_insert_rows('ledger_transactions', jsonb_agg(jsonb_build_object(
            'bucket', x->'bucket', 'id', x->'transaction_id', 'kind', x->'kind',
            'reason', x->'reason', 'metadata', x->'metadata')))
     FROM jsonb_array_elements(accepted) AS x;
  PERFORM holdfast_insert_rows('entries', jsonb_agg(e.row ORDER BY e.n, e.leg))
     FROM (SELECT n, 0 AS leg, jsonb_build_object(
                  'bucket', x->'bucket', 'transaction_id', x->'transaction_id', 'leg', 0,
                  'account_id', x->'account_id', 'seq', x->'seq', 'amount', x->'delta',
                  'settled_after', x->'settled_after', 'hold_id', x->'hold_id', 'kind', x->'kind',
                  'metadata', x->'metadata') AS row
             FROM jsonb_array_elements(accepted) WITH ORDINALITY AS a(x, n)
           UNION ALL
           SELECT n, 1, jsonb_build_object(
                  'bucket', x->'bucket', 'transaction_id', x->'transaction_id', 'leg', 1,
                  'account_id', x->'counterparty', 'seq', NULL, 'amount', -(x->>'delta')::int8,
                  'settled_after', NULL, 'hold_id', x->'hold_id', 'kind', x->'kind',
                  'metadata', x->'metadata')
             FROM jsonb_array_elements(accepted) WITH ORDINALITY AS a(x, n)) e;

  PERFORM 1 FROM accounts a
    WHERE a.bucket = ANY (buckets)
      AND a.id = ANY (ARRAY(SELECT DISTINCT x->>'counterparty' FROM jsonb_array_elements(accepted) x))
    ORDER BY a.bucket, a.id COLLATE "C"
      FOR NO KEY UPDATE;
  UPDATE accounts a
     SET settled = a.settled - t.delta
    FROM (SELECT x.bucket, x.counterparty, sum(x.delta) AS delta
            FROM jsonb_to_recordset(accepted) AS x(bucket int, counterparty text, delta int8)
           GROUP BY x.bucket, x.counterparty) t
   WHERE a.bucket = ANY (buckets) AND a.bucket = t.bucket AND a.id = t.counterparty;
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
-- The pending holds asked for are locked first, by (bucket, id); a hold that a concurrent
-- transaction resolved first is no longer pending when its lock is granted, and is left out.
-- Then holdfast_post (src/db/sql/post.sql) posts each settle's purchase transaction (user →
-- @revenue: the captured coins leave settled, the whole hold leaves held), numbered in the order
-- of `i` within its account, locking accounts in lock order after the holds. Nothing locks a
-- hold after an account, so two batches, or a batch and a single settle, release or expire
-- (hold, then account), cannot wait on each other in a cycle. Last, the holds whose posting went
-- through become `settled` (after their transaction exists: on Citus the statements run one by
-- one, and each foreign key is checked at once).
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
  plan jsonb;
  holds_now jsonb;
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
    SELECT jsonb_agg(jsonb_build_object(
             'i', s.i, 'bucket', s.bucket, 'transaction_id', s.transaction_id, 'kind', 'purchase',
             'account_id', s.account_id, 'counterparty', '@revenue', 'delta', -s.captured,
             'release_held', s.released, 'hold_id', s.hold_id))
      INTO plan
      FROM (SELECT DISTINCT ON (h.id) x.i, x.transaction_id, h.bucket, h.id AS hold_id, h.account_id,
                   h.amount AS released, COALESCE(x.amount, h.amount) AS captured
              FROM jsonb_to_recordset(commands)
                   AS x(i int, bucket int, hold_id uuid, amount int8, transaction_id uuid)
              JOIN holds h ON h.bucket = x.bucket AND h.id = x.hold_id
             WHERE h.bucket = ANY (buckets) AND h.id = ANY (pending)
               AND COALESCE(x.amount, h.amount) <= h.amount
             ORDER BY h.id, x.i) s;
  END IF;
  IF plan IS NOT NULL THEN
    SELECT COALESCE(array_agg(r.o_i), '{}') INTO posted
      FROM holdfast_post(plan) r WHERE r.o_refusal IS NULL;
    UPDATE holds h
       SET status = 'settled', settled_amount = -x.delta, transaction_id = x.transaction_id,
           resolved_at = now()
      FROM jsonb_to_recordset(plan) AS x(i int, bucket int, hold_id uuid, delta int8, transaction_id uuid)
     WHERE h.bucket = ANY (buckets) AND h.bucket = x.bucket AND h.id = x.hold_id
       AND x.i = ANY (posted);
  END IF;

  -- The holds as they are now, by = ANY (a prepared plan keeps index look-ups for it, where a
  -- join could hash the whole table); the answer is then put together from them alone.
  SELECT jsonb_object_agg(h.id, to_jsonb(h)) INTO holds_now
    FROM holds h
   WHERE h.bucket = ANY (buckets)
     AND h.id = ANY (ARRAY(SELECT (x->>'hold_id')::uuid FROM jsonb_array_elements(commands) x));
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
                   holds_now -> x.hold_id::text AS hold
              FROM jsonb_to_recordset(commands) AS x(i int, hold_id uuid, amount int8)) r
     ORDER BY r.i;
END;
$$;
--> statement-breakpoint
-- Redeems a promotion on an account (redeemPromotion in src/ledger/redeem-promotion.ts): credits
-- settled × (multiplier − 1) from @promotions through holdfast_post, with settled read under the
-- account's row lock, so the credit is decided at one position in the account's sequence and is
-- what a serial order would give. Pending holds are neither counted nor touched.
--
-- The promotion row is locked first, then the account: nothing that holds an account waits for
-- a promotion, so redemptions, purchases, settles and credits cannot form a lock cycle, and a
-- queue of redemptions on a popular promotion holds no account while it waits. Under those locks
-- it decides, in this order: promotion_not_found, account_not_found,
-- promotion_already_redeemed, promotion_inactive (not started, ended, or at its cap), and
-- through holdfast_post balance_limit_exceeded. A refusal writes nothing. An account with
-- nothing settled redeems with credited 0 and no ledger transaction (a transaction cannot have
-- zero entries), and uses up its redemption. The redemption row is written after its ledger
-- transaction (its foreign key is checked at once on Citus); the primary key backs "once per
-- account".
--
-- One row: the refusal or null (for promotion_inactive, why: not_started, ended, exhausted),
-- what the refusal's message needs, the redemption and the
-- account after it.
CREATE OR REPLACE FUNCTION holdfast_redeem(p_code text, p_bucket int, p_account text,
                                           p_transaction_id uuid)
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
  SELECT p.* INTO promo FROM promotions p WHERE p.code = p_code FOR NO KEY UPDATE;
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
  ELSIF promo.max_redemptions IS NOT NULL AND promo.redemptions >= promo.max_redemptions THEN
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
  UPDATE promotions SET redemptions = redemptions + 1 WHERE code = p_code;
  RETURN NEXT;
END;
$$;
