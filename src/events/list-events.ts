import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { EventType } from "../db/schema/index.ts";
import { encodeCursor } from "../ledger/cursor.ts";
import { bucketOf } from "../ledger/ids.ts";
import { textArray, toIso } from "../ledger/rows.ts";

export interface Event {
  id: string;
  type: EventType;
  accountId: string;
  /** The account's own event counter: 1, 2, 3, … with no gaps. */
  sequence: number;
  createdAt: string;
  /** The resource as the API rendered it after the change. */
  data: unknown;
}

export type EventRow = {
  id: string;
  type: EventType;
  account_id: string;
  sequence: number;
  created_at: string;
  data: unknown;
  position: number;
};

export const toEvent = (row: EventRow): Event => ({
  id: row.id,
  type: row.type,
  accountId: row.account_id,
  sequence: row.sequence,
  createdAt: toIso(row.created_at),
  data: row.data,
});

/** How many events one call places in the feed; a reader that finds more places the rest. */
const PLACE_AT_ONCE = 5000;

/** Places committed events in the feed (src/db/sql/position_events.sql), in its own transaction. */
export async function positionEvents(db: Db): Promise<number> {
  const [row] = await db.execute<{ n: number }>(
    sql`SELECT holdfast_position_events(${PLACE_AT_ONCE}) AS n`,
  );
  return row!.n;
}

export interface ListEventsInput {
  /** The position of the last event the reader has; 0 from the start. */
  after: number;
  limit: number;
  types?: EventType[] | undefined;
  accountId?: string | undefined;
}

/**
 * The events after `after` in feed order, and the cursor to follow. Committed events are placed
 * first, so a reader that keeps following `nextCursor` sees every committed event exactly once
 * (see position_events.sql for why none is skipped). `nextCursor` is always given: with no
 * event after `after` yet, it is the cursor the reader came with.
 */
export async function listEvents(
  db: Db,
  input: ListEventsInput,
): Promise<{ data: Event[]; nextCursor: string }> {
  await positionEvents(db);
  const rows = await db.execute<EventRow>(sql`
    SELECT id, type, account_id, sequence, created_at, data, position FROM events
     WHERE position > ${input.after}
       ${input.types ? sql`AND type = ANY (${textArray(input.types)})` : sql``}
       ${input.accountId ? sql`AND bucket = ${bucketOf(input.accountId)} AND account_id = ${input.accountId}` : sql``}
     -- One account's events are placed in their sequence order (verify checks it), so its page
     -- is read along the primary key rather than along every account's positions.
     ORDER BY ${input.accountId ? sql`sequence` : sql`position`}
     LIMIT ${input.limit}`);
  const last = rows.at(-1)?.position ?? input.after;
  return { data: rows.map(toEvent), nextCursor: encodeCursor(last) };
}
