import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { oneShardAtATime } from "../db/distribute.ts";
import { positionEvents } from "../events/list-events.ts";
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

/** How many feed events one endpoint's dispatch reads at once. */
const DISPATCH_AT_ONCE = 1000;

/**
 * Turns the events placed since each endpoint's cursor into deliveries (those of its types),
 * and moves the cursor past them, in one transaction per endpoint: the deliveries are made
 * exactly once whatever crashes, and whichever process dispatches (the endpoint's row lock,
 * SKIP LOCKED, lets one at a time). Then answers the lanes whose first pending delivery is
 * due. Everything is in Postgres: with Redis wiped, the next call finds the same lanes.
 */
export async function dispatchEvents(db: Database): Promise<DeliveryLane[]> {
  const endpoints = await db.execute<{ id: string }>(sql`SELECT id FROM webhook_endpoints`);
  // With no subscriber, nothing to place (on Citus, placing is a write to every shard).
  if (endpoints.length === 0) return [];
  await positionEvents(db);
  for (const { id } of endpoints) {
    await db.transaction(async (tx) => {
      await oneShardAtATime(tx);
      const [endpoint] = await tx.execute<{ cursor: number; types: string[] | null }>(sql`
        SELECT cursor, to_jsonb(types) AS types FROM webhook_endpoints
         WHERE id = ${id} FOR UPDATE SKIP LOCKED`);
      if (!endpoint) return;
      const [scanned] = await tx.execute<{ last: number | null }>(sql`
        WITH scanned AS (
          SELECT bucket, account_id, sequence, id, type, position FROM events
           WHERE position > ${endpoint.cursor} ORDER BY position LIMIT ${DISPATCH_AT_ONCE}
        ), made AS (
          INSERT INTO webhook_deliveries (bucket, endpoint_id, account_id, sequence, event_id, type)
          SELECT bucket, ${id}::uuid, account_id, sequence, id, type FROM scanned
           WHERE ${endpoint.types === null ? sql`true` : sql`type = ANY (${textArray(endpoint.types)})`}
          ON CONFLICT DO NOTHING
        )
        SELECT max(position) AS last FROM scanned`);
      if (scanned?.last != null) {
        await tx.execute(
          sql`UPDATE webhook_endpoints SET cursor = ${scanned.last} WHERE id = ${id}`,
        );
      }
    });
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
