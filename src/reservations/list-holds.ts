import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { HoldStatus } from "../db/schema/index.ts";
import { getAccount } from "../ledger/account.ts";
import { encodeCursor } from "../ledger/cursor.ts";
import { bucketOf } from "../ledger/ids.ts";
import type { Page } from "../ledger/list-entries.ts";
import { HOLD_COLUMNS, type Hold, type HoldRow, toHold } from "./hold.ts";

export interface ListHoldsInput {
  accountId: string;
  status?: HoldStatus | undefined;
  limit: number;
  /** The id of the last hold of the previous page. Ids are UUIDv7, so they sort by creation. */
  before?: string | undefined;
}

/** Newest first, keyset-paginated on the (account_id, id) index. */
export async function listHolds(db: Db, input: ListHoldsInput): Promise<Page<Hold>> {
  await getAccount(db, input.accountId);
  const rows = await db.execute<HoldRow>(sql`
    SELECT ${HOLD_COLUMNS} FROM holds
     WHERE bucket = ${bucketOf(input.accountId)} AND account_id = ${input.accountId}
       ${input.status ? sql`AND status = ${input.status}` : sql``}
       ${input.before ? sql`AND id < ${input.before}` : sql``}
     ORDER BY id DESC
     LIMIT ${input.limit + 1}`);
  const page = rows.slice(0, input.limit).map(toHold);
  return {
    data: page,
    nextCursor: rows.length > input.limit ? encodeCursor(page[page.length - 1]!.id) : null,
  };
}

/** Pending holds by deadline, for the sweep to re-enqueue their jobs (partial index scan). */
export async function pendingHolds(
  db: Db,
  limit: number,
  after?: Pick<Hold, "id" | "expiresAt">,
): Promise<Hold[]> {
  const rows = await db.execute<HoldRow>(sql`
    SELECT ${HOLD_COLUMNS} FROM holds
     WHERE status = 'pending'
       ${after ? sql`AND (expires_at, id) > (${after.expiresAt}::timestamptz, ${after.id}::uuid)` : sql``}
     ORDER BY expires_at, id LIMIT ${limit}`);
  return rows.map(toHold);
}
