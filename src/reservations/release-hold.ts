import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { appendEvents } from "../events/append-events.ts";
import { bucketOfId } from "../ledger/ids.ts";
import { bucketArray, intArray, uuidArray } from "../ledger/rows.ts";
import { count, holdsExpired, holdsReleased } from "../metrics.ts";
import {
  findHold,
  getHold,
  HOLD_COLUMNS,
  type Hold,
  type HoldRow,
  notPending,
  toHold,
} from "./hold.ts";

/**
 * Ends a pending hold without posting anything (holdfast_end_holds, src/db/sql/end_holds.sql),
 * and appends the change's event in the same transaction. Expiry applies only once the
 * deadline has passed by the database's clock.
 */
function endHold(
  db: Db,
  holdId: string,
  status: "released" | "expired",
  reason: string | null,
): Promise<Hold | undefined> {
  return atomically(db, async (tx) => {
    const hold = await endHoldRow(tx, holdId, status, reason);
    if (hold)
      await appendEvents(tx, [{ type: `hold.${status}`, accountId: hold.accountId, data: hold }]);
    return hold;
  });
}

/** The holds that holdfast_end_holds ended of those asked, in its buckets. */
async function endHoldRows(
  db: Db,
  buckets: number[],
  ids: string[],
  status: "released" | "expired",
  reason: string | null,
): Promise<Hold[]> {
  const rows = await db.execute<HoldRow>(sql`
    SELECT ${HOLD_COLUMNS}
      FROM holdfast_end_holds(${intArray(buckets)}, ${uuidArray(ids)}, ${status}, ${reason})`);
  return rows.map(toHold);
}

async function endHoldRow(
  db: Db,
  holdId: string,
  status: "released" | "expired",
  reason: string | null,
): Promise<Hold | undefined> {
  const [hold] = await endHoldRows(db, [bucketOfId(holdId)], [holdId], status, reason);
  return hold;
}

/** Voids a pending hold. Releasing a released hold again returns it. */
export async function releaseHold(
  db: Db,
  input: { holdId: string; reason?: string | undefined },
): Promise<Hold> {
  const released = await endHold(db, input.holdId, "released", input.reason ?? null);
  if (released) {
    count(db, holdsReleased);
    return released;
  }
  const hold = await getHold(db, input.holdId);
  if (hold.status === "released") return hold;
  throw notPending(hold, "released");
}

export type ExpireOutcome =
  | { kind: "expired"; hold: Hold }
  | { kind: "not_due"; hold: Hold }
  | { kind: "resolved"; hold: Hold }
  | { kind: "missing" };

/** Expires a hold if it is still pending and its deadline has passed (by the database clock). */
export async function expireHold(db: Db, holdId: string): Promise<ExpireOutcome> {
  const expired = await endHold(db, holdId, "expired", "expired");
  if (expired) {
    count(db, holdsExpired);
    return { kind: "expired", hold: expired };
  }
  const hold = await findHold(db, holdId);
  if (!hold) return { kind: "missing" };
  return { kind: hold.status === "pending" ? "not_due" : "resolved", hold };
}

/**
 * Expires up to `limit` overdue pending holds in one transaction (the sweep), of the buckets
 * `inBuckets` when given: on Citus the sweep goes shard by shard, each a single-shard write.
 * SKIP LOCKED lets several sweepers, and settle/release calls in flight, proceed without
 * waiting on each other; holdfast_end_holds then ends them, their accounts locked in lock order.
 * The buckets go in as bucketArray: Citus runs a FOR UPDATE on one shard only.
 */
export async function expireOverdueHolds(
  db: Db,
  limit: number,
  inBuckets?: number[],
): Promise<string[]> {
  const holds = await db.transaction(async (tx) => {
    const due = await tx.execute<{ bucket: number; id: string }>(sql`
      SELECT bucket, id FROM holds
       WHERE ${inBuckets ? sql`bucket = ANY (${bucketArray(inBuckets)}) AND` : sql``}
             status = 'pending' AND expires_at <= now()
       ORDER BY expires_at
       LIMIT ${limit}
         FOR UPDATE SKIP LOCKED`);
    if (due.length === 0) return [];
    const buckets = [...new Set(due.map((d) => d.bucket))];
    const expired = await endHoldRows(
      tx,
      buckets,
      due.map((d) => d.id),
      "expired",
      "expired",
    );
    await appendEvents(
      tx,
      expired.map((hold) => ({
        type: "hold.expired" as const,
        accountId: hold.accountId,
        data: hold,
      })),
    );
    return expired;
  });
  count(db, holdsExpired, holds.length);
  return holds.map((h) => h.id);
}
