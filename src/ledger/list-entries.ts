import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { EntryKind } from "../db/schema/index.ts";
import { getAccount } from "./account.ts";
import { encodeCursor } from "./cursor.ts";
import { bucketFilter } from "./ids.ts";
import { toIso } from "./rows.ts";

export interface Entry {
  /** Position in the account's sequence (1, 2, 3, …); null on system accounts. */
  seq: number | null;
  transactionId: string;
  kind: EntryKind;
  amount: number;
  settledAfter: number | null;
  holdId: string | null;
  createdAt: string;
  metadata: Record<string, unknown> | null;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

type EntryRow = {
  id: number;
  seq: number | null;
  transaction_id: string;
  kind: EntryKind;
  amount: number;
  settled_after: number | null;
  hold_id: string | null;
  created_at: string;
  metadata: Record<string, unknown> | null;
};

export interface ListInput {
  accountId: string;
  limit: number;
  /** The position decoded from the previous page's cursor. */
  before?: number | undefined;
}

/** Newest first, keyset-paginated on the (account_id, id) index; a system account's span all buckets. */
export async function listEntries(db: Db, input: ListInput): Promise<Page<Entry>> {
  await getAccount(db, input.accountId);
  const rows = await db.execute<EntryRow>(sql`
    SELECT id, seq, transaction_id, kind, amount, settled_after, hold_id, created_at, metadata
      FROM entries
     WHERE ${bucketFilter(input.accountId)} account_id = ${input.accountId}
       ${input.before === undefined ? sql`` : sql`AND id < ${input.before}`}
     ORDER BY id DESC
     LIMIT ${input.limit + 1}`);
  const page = rows.slice(0, input.limit);
  const more = rows.length > input.limit;
  return {
    data: page.map((r) => ({
      seq: r.seq,
      transactionId: r.transaction_id,
      kind: r.kind,
      amount: r.amount,
      settledAfter: r.settled_after,
      holdId: r.hold_id,
      createdAt: toIso(r.created_at),
      metadata: r.metadata,
    })),
    nextCursor: more ? encodeCursor(page[page.length - 1]!.id) : null,
  };
}
