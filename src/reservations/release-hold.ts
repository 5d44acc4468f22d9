import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { appendEvents } from "../events/append-events.ts";
import { bucketOfId } from "../ledger/ids.ts";
import { intArray, textArray, uuidArray } from "../ledger/rows.ts";
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
 * Ends a pending hold without posting anything: the hold leaves `pending` (a conditional
 * update) and the account's held balance drops by its amount, in one statement, and the
 * change's event is appended in the same transaction. Expiry applies only once the deadline
 * has passed by the database's clock.
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

async function endHoldRow(
  db: Db,
  holdId: string,
  status: "released" | "expired",
  reason: string | null,
): Promise<Hold | undefined> {
  const bucket = bucketOfId(holdId);
  const rows = await db.execute<HoldRow>(sql`
    WITH h AS (
      UPDATE holds SET status = ${status}, reason = ${reason}, resolved_at = now()
       WHERE bucket = ${bucket} AND id = ${holdId} AND status = 'pending'
         ${status === "expired" ? sql`AND expires_at <= now()` : sql``}
      RETURNING ${HOLD_COLUMNS}
    ), a AS (
      UPDATE accounts SET held = accounts.held - h.amount
        FROM h WHERE accounts.bucket = ${bucket} AND accounts.id = h.account_id
    )
    SELECT * FROM h`);
  return rows[0] && toHold(rows[0]);
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
 * `inBuckets` when given: on Citus the sweep goes shard by shard, each a single-shard write. SKIP LOCKED lets
 * several sweepers, and settle/release calls in flight, proceed without waiting on each other.
 * The holds' accounts are locked in lock order, (bucket, id COLLATE "C"), before any is
 * updated: an update of them all in one statement locks them in no set order, and deadlocked
 * with a settle batch over the same accounts.
 */
export async function expireOverdueHolds(
  db: Db,
  limit: number,
  inBuckets?: number[],
): Promise<string[]> {
  const holds = await db.transaction(async (tx) => {
    const due = await tx.execute<{ bucket: number; id: string; account_id: string }>(sql`
      SELECT bucket, id, account_id FROM holds
       WHERE ${inBuckets ? sql`bucket = ANY (${intArray(inBuckets)}) AND` : sql``}
             status = 'pending' AND expires_at <= now()
       ORDER BY expires_at
       LIMIT ${limit}
         FOR UPDATE SKIP LOCKED`);
    if (due.length === 0) return [];
    const buckets = intArray([...new Set(due.map((d) => d.bucket))]);
    const accounts = [...new Set(due.map((d) => d.account_id))];
    await tx.execute(sql`
      SELECT 1 FROM accounts WHERE bucket = ANY (${buckets}) AND id = ANY (${textArray(accounts)})
       ORDER BY bucket, id COLLATE "C"
         FOR NO KEY UPDATE`);
    const rows = await tx.execute<HoldRow & { bucket: number }>(sql`
      WITH h AS (
        UPDATE holds SET status = 'expired', reason = 'expired', resolved_at = now()
         WHERE bucket = ANY (${buckets}) AND id = ANY (${uuidArray(due.map((d) => d.id))})
        RETURNING bucket, ${HOLD_COLUMNS}
      ), per_account AS (
        SELECT bucket, account_id, sum(amount) AS amount FROM h GROUP BY bucket, account_id
      ), a AS (
        UPDATE accounts SET held = accounts.held - p.amount
          FROM per_account p
         WHERE accounts.bucket = ANY (${buckets}) AND accounts.bucket = p.bucket
           AND accounts.id = p.account_id
      )
      SELECT * FROM h`);
    const expired = rows.map(toHold);
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
