import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { HOLD_COLUMNS, type Hold, type HoldRow, toHold } from "./hold.ts";

export type HoldSearch = { accountId: string } | { orderId: string };

/**
 * An operator's look-up: an account's holds (on the account_id index) or an order's, newest
 * first (ids are UUIDv7, time-ordered), in every state. order_id has no index, so an order
 * search scans the holds table.
 */
export async function searchHolds(db: Db, search: HoldSearch, limit: number): Promise<Hold[]> {
  const where =
    "accountId" in search
      ? sql`account_id = ${search.accountId}`
      : sql`order_id = ${search.orderId}`;
  const rows = await db.execute<HoldRow>(sql`
    SELECT ${HOLD_COLUMNS} FROM holds
     WHERE ${where}
     ORDER BY id DESC
     LIMIT ${limit}`);
  return rows.map(toHold);
}
