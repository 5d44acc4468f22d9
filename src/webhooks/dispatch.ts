import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { type Feed, feedsOf, inFeed, placeEvents, startFeed } from "../events/feeds.ts";
import { textArray } from "../ledger/rows.ts";

/** The deliveries of one account to one endpoint: they go out one at a time, in order. */
export type DeliveryLane = {
  endpointId: string;
  bucket: number;
  accountId: string;
  /** The first pending delivery's event, to name the job after it. */
  sequence: number;
  type: string;
};

/** How many feed events one endpoint's dispatch reads from one feed at once. */
const DISPATCH_AT_ONCE = 1000;

type Endpoint = { id: string; types: string[] | null; cursor: number };

/**
 * Turns the events placed since each endpoint's cursors into deliveries (those of its types),
 * and moves the cursors past them, in one transaction per endpoint and feed, on that feed's
 * shard: the deliveries are made exactly once whatever crashes, and whichever process
 * dispatches (the cursor's row lock, SKIP LOCKED, lets one at a time). Then answers the lanes
 * whose first pending delivery is due. Everything is in Postgres: with Redis wiped, the next
 * call finds the same lanes.
 */
export async function dispatchEvents(db: Database): Promise<DeliveryLane[]> {
  const endpoints = await db.execute<Endpoint>(
    sql`SELECT id, to_jsonb(types) AS types, cursor FROM webhook_endpoints`,
  );
  // With no subscriber, nothing to place.
  if (endpoints.length === 0) return [];
  await placeEvents(db);
  const feeds = await feedsOf(db);
  // Two reads find where an endpoint is behind a feed, or has no cursor yet. A feed with no row
  // yet is started: it may hold events placed before the feeds were per shard.
  const heads = await db.execute<{ bucket: number; position: number }>(
    sql`SELECT bucket, position FROM event_feeds`,
  );
  const headOf = new Map(heads.map((f) => [f.bucket, f.position]));
  for (const feed of feeds.filter((f) => !headOf.has(f.home))) await startFeed(db, feed);
  const cursors = await db.execute<{ bucket: number; id: string; position: number }>(
    sql`SELECT bucket, endpoint_id AS id, position FROM webhook_cursors`,
  );
  const cursorOf = new Map(cursors.map((c) => [`${c.id} ${c.bucket}`, c.position]));
  for (const endpoint of endpoints) {
    for (const feed of feeds) {
      const cursor = cursorOf.get(`${endpoint.id} ${feed.home}`);
      if (cursor === undefined || cursor < (headOf.get(feed.home) ?? Infinity))
        await dispatchFeed(db, endpoint, feed);
    }
  }
  return db.execute<DeliveryLane>(sql`
    SELECT endpoint_id AS "endpointId", bucket, account_id AS "accountId", sequence, type
      FROM (SELECT DISTINCT ON (endpoint_id, bucket, account_id)
                   endpoint_id, bucket, account_id, sequence, type, next_attempt_at
              FROM webhook_deliveries WHERE status = 'pending'
             ORDER BY endpoint_id, bucket, account_id, sequence) head
     WHERE next_attempt_at <= now()
     LIMIT 1000`);
}

/** One endpoint's deliveries of one feed's events after its cursor there. */
async function dispatchFeed(db: Database, endpoint: Endpoint, feed: Feed): Promise<void> {
  const missing = await db.transaction(async (tx) => {
    const [cursor] = await tx.execute<{ position: number }>(sql`
      SELECT position FROM webhook_cursors
       WHERE bucket = ${feed.home} AND endpoint_id = ${endpoint.id} FOR UPDATE SKIP LOCKED`);
    if (!cursor) {
      const [held] = await tx.execute(sql`
        SELECT 1 FROM webhook_cursors WHERE bucket = ${feed.home} AND endpoint_id = ${endpoint.id}`);
      return held === undefined;
    }
    const [scanned] = await tx.execute<{ last: number | null }>(sql`
      SELECT max(position) AS last FROM (
        SELECT position FROM events WHERE position > ${cursor.position} ${inFeed(feed)}
         ORDER BY position LIMIT ${DISPATCH_AT_ONCE}) next`);
    if (scanned?.last == null) return false;
    // Colocated and on one shard, so Citus runs it there, on the transaction's connection (a
    // statement that reads its rows through the coordinator makes a two-phase commit).
    await tx.execute(sql`
      INSERT INTO webhook_deliveries (bucket, endpoint_id, account_id, sequence, event_id, type)
      SELECT bucket, ${endpoint.id}::uuid, account_id, sequence, id, type FROM events
       WHERE position > ${cursor.position} AND position <= ${scanned.last} ${inFeed(feed)}
         ${endpoint.types === null ? sql`` : sql`AND type = ANY (${textArray(endpoint.types)})`}
      ON CONFLICT DO NOTHING`);
    await tx.execute(sql`
      UPDATE webhook_cursors SET position = ${scanned.last}
       WHERE bucket = ${feed.home} AND endpoint_id = ${endpoint.id}`);
    return false;
  });
  // Made with the endpoint, one per feed; missing for an endpoint older than per-shard feeds.
  if (missing) {
    await db.execute(sql`
      INSERT INTO webhook_cursors (bucket, endpoint_id, position)
      SELECT ${feed.home}, id, cursor FROM webhook_endpoints WHERE id = ${endpoint.id}
      ON CONFLICT DO NOTHING`);
  }
}
