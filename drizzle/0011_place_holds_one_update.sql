-- Custom SQL migration file, put your code below! --
-- Places the holds of many purchases in one statement (placeHolds in src/reservations/place-hold.ts).
--
-- `commands` is a JSON array of {i, id, bucket, account_id, amount, order_id, description,
-- metadata, seconds}; `id` carries `bucket`, the account's. Accounts are locked in lock order,
-- (bucket, id COLLATE "C"), as every batch of the write path locks them, so concurrent batches
-- cannot deadlock. FOR NO KEY UPDATE is the lock an UPDATE of `held` takes: it leaves
-- foreign-key checks on the account free. Each account's purchases are decided one after the
-- other in the order of `i`, as if applied serially: a purchase fits if it is at most what the
-- account has available after the purchases before it that fitted. Each account's `held` then
-- grows once, by their sum, and the holds that fitted are inserted by one INSERT.
--
-- A function rather than one statement of CTEs: in READ COMMITTED every statement of a
-- function takes a new snapshot, so the UPDATE after the SELECT … FOR NO KEY UPDATE sees the row
-- it locked. In a single statement, an UPDATE of a row that a concurrent transaction changed
-- before the CTE's FOR UPDATE took it computes from the statement's older snapshot.
--
-- The writes come once every account is decided, its row locked in lock order by then: on plain
-- Postgres one UPDATE of all the accounts (their rows already locked) and one static INSERT … SELECT
-- of the holds, each planned once per session. Every execution of an UPDATE of `accounts`
-- prepares its CHECK constraints afresh, and accounts_user_in_own_bucket inlines
-- holdfast_bucket, which parses its body each time: one UPDATE per account made that a fifth of
-- the Postgres CPU of a spread load, and holdfast_insert_rows's dynamic INSERT is planned
-- at every call. A batch of one account (a hot account's) updates it by a single-row UPDATE:
-- the join with the arrays would be planned again at each call, since the plan for their
-- actual length (one) looks cheaper than the generic one. On Citus, one UPDATE per account and
-- holdfast_insert_rows's INSERT … VALUES, each routed to the batch's shard.
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
  -- The accounts whose `held` grows, and by how much.
  raised_buckets int[] := '{}';
  raised_ids text[] := '{}';
  raised_by int8[] := '{}';
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
        raised_buckets := raised_buckets || current_bucket;
        raised_ids := raised_ids || current_account;
        raised_by := raised_by || reserved;
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
    raised_buckets := raised_buckets || current_bucket;
    raised_ids := raised_ids || current_account;
    raised_by := raised_by || reserved;
  END IF;

  IF cardinality(accepted) = 0 THEN
    RETURN;
  END IF;

  IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
    IF cardinality(raised_ids) = 1 THEN
      UPDATE accounts SET held = accounts.held + raised_by[1]
       WHERE accounts.bucket = raised_buckets[1] AND accounts.id = raised_ids[1];
    ELSE
      UPDATE accounts a SET held = a.held + r.raise
        FROM unnest(raised_buckets, raised_ids, raised_by) AS r(bucket, id, raise)
       WHERE a.bucket = r.bucket AND a.id = r.id;
    END IF;
    INSERT INTO holds (bucket, id, account_id, amount, order_id, description, metadata,
                       expires_at, created_at)
    SELECT x.bucket, x.id, x.account_id, x.amount, x.order_id, x.description, x.metadata,
           now() + make_interval(secs => x.seconds), now()
      FROM jsonb_to_recordset(commands) AS x(
             i int, id uuid, bucket int, account_id text, amount int8, order_id text,
             description text, metadata jsonb, seconds int)
     WHERE x.i = ANY (accepted)
     ORDER BY x.i;
    RETURN;
  END IF;

  FOR k IN 1 .. cardinality(raised_ids) LOOP
    UPDATE accounts SET held = accounts.held + raised_by[k]
     WHERE accounts.bucket = raised_buckets[k] AND accounts.id = raised_ids[k];
  END LOOP;
  PERFORM holdfast_insert_rows('holds', jsonb_agg(jsonb_build_object(
            'bucket', x.bucket, 'id', x.id, 'account_id', x.account_id, 'amount', x.amount,
            'order_id', x.order_id, 'description', x.description, 'metadata', x.metadata,
            'expires_at', now() + make_interval(secs => x.seconds), 'created_at', now())
            ORDER BY x.i))
     FROM jsonb_to_recordset(commands) AS x(
            i int, id uuid, bucket int, account_id text, amount int8, order_id text,
            description text, metadata jsonb, seconds int)
    WHERE x.i = ANY (accepted);
END;
$$;
