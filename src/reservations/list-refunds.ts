import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { encodeCursor } from "../ledger/cursor.ts";
import { bucketOfId } from "../ledger/ids.ts";
import type { Page } from "../ledger/list-entries.ts";
import { getHold } from "./hold.ts";
import { REFUND_COLUMNS, type Refund, type RefundRow, toRefund } from "./refund-hold.ts";

export interface ListRefundsInput {
  holdId: string;
  limit: number;
  /** The id of the last refund of the previous page. Ids are UUIDv7, so they sort by creation. */
  before?: string | undefined;
}

/** A hold's refunds, newest first, keyset-paginated on the (bucket, hold_id, id) index. */
export async function listRefunds(db: Db, input: ListRefundsInput): Promise<Page<Refund>> {
  const hold = await getHold(db, input.holdId);
  const rows = await db.execute<RefundRow>(sql`
    SELECT ${REFUND_COLUMNS} FROM refunds
     WHERE bucket = ${bucketOfId(hold.id)} AND hold_id = ${hold.id}
       ${input.before ? sql`AND id < ${input.before}` : sql``}
     ORDER BY id DESC
     LIMIT ${input.limit + 1}`);
  const page = rows.slice(0, input.limit).map(toRefund);
  return {
    data: page,
    nextCursor: rows.length > input.limit ? encodeCursor(page[page.length - 1]!.id) : null,
  };
}
