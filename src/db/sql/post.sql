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
