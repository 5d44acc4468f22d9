CREATE TABLE "events" (
	"bucket" integer NOT NULL,
	"id" uuid NOT NULL,
	"n" bigint GENERATED ALWAYS AS IDENTITY (sequence name "events_n_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"position" bigint,
	"account_id" text NOT NULL,
	"sequence" bigint NOT NULL,
	"type" text NOT NULL,
	"data" jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "events_bucket_account_id_sequence_pk" PRIMARY KEY("bucket","account_id","sequence")
);
--> statement-breakpoint
ALTER TABLE "events" ADD CONSTRAINT "events_bucket_account_id_accounts_bucket_id_fk" FOREIGN KEY ("bucket","account_id") REFERENCES "public"."accounts"("bucket","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "events_position" ON "events" USING btree ("position") WHERE "events"."position" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "events_unpositioned" ON "events" USING btree ("n") WHERE "events"."position" IS NULL;
--> statement-breakpoint
-- An event never changes but to get its feed position, once; events are never deleted.
CREATE OR REPLACE FUNCTION holdfast_event_placed_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'holdfast: events are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.position IS NOT NULL OR NEW.position IS NULL
     OR to_jsonb(NEW) - 'position' <> to_jsonb(OLD) - 'position' THEN
    RAISE EXCEPTION 'holdfast: event % cannot change', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER events_placed_once BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION holdfast_event_placed_once();
--> statement-breakpoint
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast_refuse_change();
--> statement-breakpoint
-- Appends the events of a batch of state changes (appendEvents in src/events/append-events.ts),
-- in the transaction that made them: one statement per batch.
--
-- `events` is a JSON array of {i, bucket, id, account_id, type, data}, in the order the changes
-- were applied. Each account's events get the next numbers of its sequence, in the order of
-- `i`, after the highest it has (found through the primary key). Every change that
-- appends an event has locked its account row (or inserted it) in this transaction, so no
-- other transaction numbers the same account's events meanwhile, and the rows are inserted in
-- the order of `i`, so `n` follows each account's sequence.
CREATE OR REPLACE FUNCTION holdfast_append_events(events jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  buckets int[];
  ids text[];
  numbered jsonb;
BEGIN
  -- Plain Postgres: one INSERT … SELECT, planned once per session.
  IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
    INSERT INTO events (bucket, id, account_id, sequence, type, data)
    SELECT e.bucket, e.id, e.account_id,
           COALESCE((SELECT max(v.sequence) FROM events v
                      WHERE v.bucket = e.bucket AND v.account_id = e.account_id), 0)
             + row_number() OVER (PARTITION BY e.bucket, e.account_id ORDER BY e.i),
           e.type, e.data
      FROM jsonb_to_recordset(events)
           AS e(i int, bucket int, id uuid, account_id text, type text, data jsonb)
     ORDER BY e.i;
    RETURN;
  END IF;
  -- Citus: the rows numbered first, then one INSERT … VALUES routed to their shard.
  SELECT array_agg(DISTINCT (x->>'bucket')::int), array_agg(DISTINCT x->>'account_id')
    INTO buckets, ids FROM jsonb_array_elements(events) x;
  SELECT jsonb_agg(jsonb_build_object(
           'bucket', e.bucket, 'id', e.x->'id', 'account_id', e.account_id,
           'sequence', COALESCE(l.last, 0) + e.rank, 'type', e.x->'type', 'data', e.x->'data')
           ORDER BY e.i)
    INTO numbered
    FROM (SELECT x, (x->>'i')::int AS i, (x->>'bucket')::int AS bucket, x->>'account_id' AS account_id,
                 row_number() OVER (PARTITION BY x->>'bucket', x->>'account_id'
                                    ORDER BY (x->>'i')::int) AS rank
            FROM jsonb_array_elements(events) x) e
    LEFT JOIN (SELECT v.bucket, v.account_id, max(v.sequence) AS last
                 FROM events v
                WHERE v.bucket = ANY (buckets) AND v.account_id = ANY (ids)
                GROUP BY v.bucket, v.account_id) l
      ON l.bucket = e.bucket AND l.account_id = e.account_id;
  PERFORM holdfast_insert_rows('events', numbered);
END;
$$;
--> statement-breakpoint
-- Gives committed events their place in the feed (listEvents in src/events/list-events.ts):
-- up to `max_events` events with no position yet, in the order they were written (`n`), get the
-- positions after the highest given so far. Returns how many it placed. A call waits for
-- another one in progress, so once it returns, every event committed before it began is
-- placed: a reader that places first reads its own writes.
--
-- Why a reader following positions never skips an event: one call at a time places events (the
-- advisory lock is held until its transaction ends), each call only places events whose
-- transactions have committed (READ COMMITTED) and gives them positions above every position
-- given before, and its positions become visible together, at its commit. So the positions a
-- reader sees are always 1..k with nothing missing, and an event that commits late, after
-- later-written ones were placed, is placed later, above them: it comes after the reader's
-- cursor, never behind it. One account's events are placed in their sequence order: each is
-- written after the one before it committed (the account's lock), so it has a larger `n`, and
-- it cannot have committed before it.
CREATE OR REPLACE FUNCTION holdfast_position_events(max_events int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  base int8;
  picked jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('holdfast_position_events'));
  SELECT jsonb_agg(jsonb_build_object('bucket', p.bucket, 'n', p.n) ORDER BY p.n) INTO picked
    FROM (SELECT v.bucket, v.n FROM events v WHERE v.position IS NULL ORDER BY v.n LIMIT max_events) p;
  IF picked IS NULL THEN
    RETURN 0;
  END IF;
  SELECT COALESCE(max(v.position), 0) INTO base FROM events v;
  UPDATE events v
     SET position = base + x.rank
    FROM (SELECT (a.value->>'bucket')::int AS bucket, (a.value->>'n')::int8 AS n, a.rank
            FROM jsonb_array_elements(picked) WITH ORDINALITY AS a(value, rank)) x
   WHERE v.bucket = x.bucket AND v.n = x.n AND v.position IS NULL;
  RETURN jsonb_array_length(picked);
END;
$$;
