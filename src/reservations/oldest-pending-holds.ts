import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { HOLD_COLUMNS, type Hold, type HoldRow, toHold } from "./hold.ts";

/** The pending holds that have waited longest, oldest first: where a stuck fulfilment shows. */
export async function oldestPendingHolds(db: Db, limit: number): Promise<Hold[]> {
  const rows = await db.execute<HoldRow>(sql`
    SELECT ${HOLD_COLUMNS} FROM holds
     WHERE status = 'pending'
     ORDER BY created_at, id
     LIMIT ${limit}`);
  return rows.map(toHold);
}
