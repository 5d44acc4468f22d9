-- Refunds settled holds, fully or partly, in one statement (refundHolds in
-- src/reservations/refund-hold.ts).
--
-- `commands` is a JSON array of {i, bucket, hold_id, amount, refund_id, transaction_id, reason,
-- metadata}: `bucket` is the one the hold id carries, and the refund's and its transaction's ids
-- carry it too; `amount` null refunds all that is still refundable, settled_amount −
-- refunded_amount. A refund is a `refund` ledger transaction posted by holdfast_post
-- (src/db/sql/post.sql): the coins go back from @revenue to the hold's account, as one more
-- additive entry at the account's next position. Nothing already posted, a promotion's credit
-- included, is recomputed.
--
-- Every hold asked for is locked first, by (bucket, id), as settles lock them, then the holds'
-- accounts, by (bucket, id COLLATE "C"), before any posting: holds before accounts and every
-- user row before a system row, so a batch of refunds cannot wait in a cycle with settles,
-- releases, expiries or postings. Under the hold's lock it decides, in this order:
-- hold_not_found, hold_not_settled (pending, released or expired), refund_exceeds_settled (more
-- than what is still refundable, or nothing is left), then holdfast_post's
-- balance_limit_exceeded. A refused refund writes nothing. One account's commands are decided
-- and posted in the order of `i`, each against what the ones before it left: round k posts, in
-- one call of holdfast_post, the k-th command of every account, so a refusal there is seen by
-- the next round, and the account's entries (and its events, appended in the order of `i`)
-- follow `i`.
-- The refund rows are written after their ledger transactions (the foreign key is checked at
-- once on Citus), and each hold's refunded_amount grows once by what its refunds took.
--
-- One row per command, in order of `i`: its refusal or null, what was refundable when it was
-- decided, and for a refund that went through the refund, the hold and the account after it (as
-- jsonb with the tables' column names).
CREATE OR REPLACE FUNCTION holdfast_refund_holds(commands jsonb)
RETURNS TABLE (
  o_i int,
  o_refusal text,
  o_refundable int8,
  o_refund jsonb,
  o_hold jsonb,
  o_account jsonb
) LANGUAGE plpgsql AS $$
DECLARE
  buckets int[];
  ids uuid[];
  state jsonb;
  ranked jsonb;
  rounds int;
  c record;
  p record;
  h jsonb;
  refundable int8;
  amount int8;
  plan jsonb;
  asked jsonb;
  answers jsonb := '{}';
  refund_rows jsonb := '[]';
  created timestamptz := now()::timestamptz(3);
BEGIN
  SELECT array_agg(DISTINCT (x->>'bucket')::int), array_agg(DISTINCT (x->>'hold_id')::uuid)
    INTO buckets, ids FROM jsonb_array_elements(commands) x;
  SELECT COALESCE(jsonb_object_agg(l.id, to_jsonb(l)), '{}') INTO state
    FROM (SELECT h.* FROM holds h
           WHERE h.bucket = ANY (buckets) AND h.id = ANY (ids)
           ORDER BY h.bucket, h.id
             FOR NO KEY UPDATE) l;
  PERFORM 1 FROM accounts a
    WHERE a.bucket = ANY (buckets)
      AND a.id = ANY (ARRAY(SELECT DISTINCT h.value->>'account_id' FROM jsonb_each(state) h))
    ORDER BY a.bucket, a.id COLLATE "C"
      FOR NO KEY UPDATE;
  SELECT jsonb_agg(s.command || jsonb_build_object('round', s.round)), max(s.round)
    INTO ranked, rounds
    FROM (SELECT e.value AS command,
                 row_number() OVER (PARTITION BY state -> (e.value->>'hold_id') ->> 'account_id'
                                    ORDER BY (e.value->>'i')::int) AS round
            FROM jsonb_array_elements(commands) e) s;

  FOR r IN 1..rounds LOOP
    plan := '[]';
    asked := '{}';
    FOR c IN
      SELECT * FROM jsonb_to_recordset(ranked) AS x(
               i int, round int, bucket int, hold_id uuid, amount int8, refund_id uuid,
               transaction_id uuid, reason text, metadata jsonb)
       WHERE x.round = r ORDER BY x.i
    LOOP
      h := state -> c.hold_id::text;
      refundable := (h->>'settled_amount')::int8 - (h->>'refunded_amount')::int8;
      amount := COALESCE(c.amount, refundable);
      IF h IS NULL THEN
        answers := answers || jsonb_build_object(c.i, jsonb_build_object('refusal', 'hold_not_found'));
      ELSIF h->>'status' <> 'settled' THEN
        answers := answers || jsonb_build_object(c.i, jsonb_build_object(
                     'refusal', 'hold_not_settled', 'hold', h));
      ELSIF amount < 1 OR amount > refundable THEN
        answers := answers || jsonb_build_object(c.i, jsonb_build_object(
                     'refusal', 'refund_exceeds_settled', 'refundable', refundable, 'hold', h));
      ELSE
        plan := plan || jsonb_build_object(
                  'i', c.i, 'bucket', c.bucket, 'transaction_id', c.transaction_id,
                  'kind', 'refund', 'account_id', h->>'account_id', 'counterparty', '@revenue',
                  'delta', amount, 'release_held', 0, 'hold_id', c.hold_id,
                  'reason', c.reason, 'metadata', c.metadata);
        asked := asked || jsonb_build_object(c.i, jsonb_build_object(
                   'bucket', c.bucket, 'id', c.refund_id, 'hold_id', c.hold_id,
                   'account_id', h->>'account_id', 'amount', amount, 'reason', c.reason,
                   'metadata', c.metadata, 'transaction_id', c.transaction_id,
                   'created_at', created, 'refundable', refundable));
      END IF;
    END LOOP;
    IF jsonb_array_length(plan) = 0 THEN
      CONTINUE;
    END IF;
    FOR p IN SELECT * FROM holdfast_post(plan) LOOP
      IF p.o_refusal IS NOT NULL THEN
        answers := answers || jsonb_build_object(p.o_i, jsonb_build_object(
                     'refusal', p.o_refusal, 'refundable', asked -> p.o_i::text -> 'refundable',
                     'hold', state -> (asked -> p.o_i::text ->> 'hold_id')));
        CONTINUE;
      END IF;
      h := state -> (asked -> p.o_i::text ->> 'hold_id');
      h := jsonb_set(h, '{refunded_amount}', to_jsonb(
             (h->>'refunded_amount')::int8 + (asked -> p.o_i::text ->> 'amount')::int8));
      state := jsonb_set(state, ARRAY[h->>'id'], h);
      refund_rows := refund_rows || ((asked -> p.o_i::text) - 'refundable');
      answers := answers || jsonb_build_object(p.o_i, jsonb_build_object(
                   'refundable', asked -> p.o_i::text -> 'refundable',
                   'refund', (asked -> p.o_i::text) - 'refundable',
                   'hold', h,
                   'account', jsonb_build_object(
                     'id', h->>'account_id', 'settled', p.o_settled, 'held', p.o_held,
                     'metadata', p.o_metadata, 'created_at', p.o_created_at)));
    END LOOP;
  END LOOP;

  IF jsonb_array_length(refund_rows) > 0 THEN
    PERFORM holdfast_insert_rows('refunds', refund_rows);
    UPDATE holds h
       SET refunded_amount = (state -> h.id::text ->> 'refunded_amount')::int8
     WHERE h.bucket = ANY (buckets)
       AND h.id = ANY (ARRAY(SELECT DISTINCT (x->>'hold_id')::uuid
                               FROM jsonb_array_elements(refund_rows) x));
  END IF;

  RETURN QUERY
    SELECT a.key::int, a.value->>'refusal', (a.value->>'refundable')::int8,
           a.value->'refund', a.value->'hold', a.value->'account'
      FROM jsonb_each(answers) a
     ORDER BY a.key::int;
END;
$$;
