import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import type { EventType } from "../db/schema/index.ts";
import { bucketOf } from "../ledger/ids.ts";
import { textArray, toIso } from "../ledger/rows.ts";
import { encodeFeedCursor, type FeedCursor, positionIn } from "./feed-cursor.ts";
import { feedOfBucket, feedsOf, inFeed, placeEvents } from "./feeds.ts";

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

export interface ListEventsInput {
  /** Where the reader is: FROM_THE_START, or a cursor it was given. */
  after: FeedCursor;
  limit: number;
  types?: EventType[] | undefined;
  accountId?: string | undefined;
}

type FeedRow = EventRow & { home: number };

/**
 * The events after `after`, and the cursor to follow. Committed events are placed first, so a
 * reader that keeps following `nextCursor` sees every committed event exactly once (see
 * placeEvents for why none is skipped). Each feed is read on its own, after the reader's
 * position in it, and the page takes the first `limit` of them by position: in each feed, a
 * run that follows the reader's position, so the cursor moves each feed to the last event the
 * page took from it. `nextCursor` is always given: with no event after `after` yet, it is where
 * the reader was.
 */
export async function listEvents(
  db: Database,
  input: ListEventsInput,
): Promise<{ data: Event[]; nextCursor: string }> {
  await placeEvents(db);
  const feeds = await feedsOf(db);
  const account = input.accountId;
  const read = account ? [await feedOfBucket(db, bucketOf(account))] : feeds;
  const found = await Promise.all(
    read.map((feed) =>
      db.execute<FeedRow>(sql`
        SELECT id, type, account_id, sequence, created_at, data, position, ${feed.home}::int AS home
          FROM events
         WHERE position > ${positionIn(input.after, feed)} ${inFeed(feed)}
           ${input.types ? sql`AND type = ANY (${textArray(input.types)})` : sql``}
           ${account ? sql`AND bucket = ${bucketOf(account)} AND account_id = ${account}` : sql``}
         -- One account's events are placed in their sequence order (verify checks it), so its
         -- page is read along the primary key rather than along its feed's positions.
         ORDER BY ${account ? sql`sequence` : sql`position`}
         LIMIT ${input.limit}`),
    ),
  );
  const page = found
    .flat()
    .sort((a, b) => a.position - b.position || a.home - b.home)
    .slice(0, input.limit);
  const positions = new Map(feeds.map((feed) => [feed.home, positionIn(input.after, feed)]));
  for (const row of page) positions.set(row.home, row.position);
  return {
    data: page.map(toEvent),
    nextCursor: encodeFeedCursor({ positions, rest: 0 }, feeds),
  };
}
