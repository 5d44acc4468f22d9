import { type SQL, sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Database, Db } from "../db/client.ts";
import { shardsOf } from "../db/shards.ts";
import { bucketArray } from "../ledger/rows.ts";

/**
 * The events of one shard, in the order they were placed: each shard has its own feed, so
 * placing events and following them are transactions on one shard. `home` is the shard's home
 * bucket, where its event_feeds row lives; `buckets` are the shard's buckets (undefined: every
 * bucket, on plain Postgres).
 */
export interface Feed {
  home: number;
  buckets: number[] | undefined;
}

/** The feeds of the database behind `db`: one per shard, in the order of their homes. */
export async function feedsOf(db: Db): Promise<Feed[]> {
  const shards = await shardsOf(db);
  return shards.homes.map((home, i) => ({ home, buckets: shards.groups[i] }));
}

/** The feed of the shard that holds `bucket`. */
export async function feedOfBucket(db: Db, bucket: number): Promise<Feed> {
  const shards = await shardsOf(db);
  const home = shards.home(bucket);
  return { home, buckets: shards.groups[shards.homes.indexOf(home)] };
}

/** `AND <column> = ANY (buckets)` for a feed of several shards: Citus routes it to that one. */
export const inFeed = (feed: Feed, column: SQL = sql`bucket`): SQL =>
  feed.buckets ? sql`AND ${column} = ANY (${bucketArray(feed.buckets)})` : sql``;

/**
 * The highest position of any feed: where a feed with no event_feeds row yet starts, and so
 * where an endpoint starts in such a feed. Positions given before the feeds were per shard came
 * from one counter, so a cursor from then is below it in every feed.
 */
export async function highestPosition(db: Db): Promise<number> {
  const [row] = await db.execute<{ position: number }>(
    sql`SELECT COALESCE(max(position), 0) AS position FROM events WHERE position IS NOT NULL`,
  );
  return Number(row!.position);
}

/** How many events one call places in a feed; a reader that finds more places the rest. */
const PLACE_AT_ONCE = 5000;

/**
 * Gives committed events their place in their shard's feed, each feed in a transaction of its
 * own on that shard; answers how many it placed. A call waits for another one in progress on
 * the same feed, so once it returns, every event committed before it began is placed: a reader
 * that places first reads its own writes.
 *
 * Why a reader following a feed never skips an event: one call at a time places a feed's events
 * (the event_feeds row lock), each call only places events whose transactions have committed
 * (READ COMMITTED) and gives them positions above every position the feed gave before, and its
 * positions become visible together, at its commit, which is one shard's. So the positions a
 * reader sees in a feed are always those up to some k, with none missing, and an event that
 * commits late, after later-written ones were placed, is placed later, above them: it comes
 * after the reader's cursor, never behind it. One account's events are placed in their sequence
 * order: each is written after the one before it committed (the account's lock), so it has a
 * larger `n`, and it cannot have committed before it.
 */
export async function placeEvents(db: Database): Promise<number> {
  const shards = await shardsOf(db);
  // One read finds the feeds with events to place (on Citus, rather than a transaction on every
  // shard each time). An event it does not see had not committed when the call began.
  const unplaced = await db.execute<{ bucket: number }>(
    sql`SELECT DISTINCT bucket FROM events WHERE position IS NULL`,
  );
  const homes = new Set(unplaced.map((row) => shards.home(row.bucket)));
  const feeds = (await feedsOf(db)).filter((feed) => homes.has(feed.home));
  const placed = await Promise.all(feeds.map((feed) => placeInFeed(db, feed)));
  return placed.reduce((a, b) => a + b, 0);
}

/** Places up to PLACE_AT_ONCE events of `feed`, making its event_feeds row first if need be. */
async function placeInFeed(db: Database, feed: Feed): Promise<number> {
  for (;;) {
    const placed = await atomically(db, async (tx) => {
      const [head] = await tx.execute<{ position: number }>(
        sql`SELECT position FROM event_feeds WHERE bucket = ${feed.home} FOR UPDATE`,
      );
      if (!head) return undefined;
      const last = Number(head.position);
      const rows = await tx.execute(sql`
        UPDATE events v SET position = ${last} + p.rank
          FROM (SELECT bucket, n, row_number() OVER (ORDER BY n) AS rank FROM events
                 WHERE position IS NULL ${inFeed(feed)}
                 ORDER BY n LIMIT ${PLACE_AT_ONCE}) p
         WHERE v.bucket = p.bucket AND v.n = p.n ${inFeed(feed, sql`v.bucket`)}
        RETURNING 1`);
      if (rows.length > 0) {
        await tx.execute(sql`
          UPDATE event_feeds SET position = ${last + rows.length} WHERE bucket = ${feed.home}`);
      }
      return rows.length;
    });
    if (placed !== undefined) return placed;
    await startFeed(db, feed);
  }
}

/** Makes the event_feeds row of `feed` if it has none: it starts at the highest position. */
export async function startFeed(db: Database, feed: Feed): Promise<void> {
  await db.execute(sql`
    INSERT INTO event_feeds (bucket, position) VALUES (${feed.home}, ${await highestPosition(db)})
    ON CONFLICT DO NOTHING`);
}
