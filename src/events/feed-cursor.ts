import { decodeCursor } from "../ledger/cursor.ts";
import type { Feed } from "./feeds.ts";

/**
 * A reader's place in the events: in each feed (by its home bucket), the position of the last
 * event it has. A feed it does not name is at `rest`: 0, from the start, except in a cursor
 * from before the feeds were per shard, whose one position holds for every feed (every
 * position a feed gives since is above it, see highestPosition).
 */
export interface FeedCursor {
  positions: ReadonlyMap<number, number>;
  rest: number;
}

export const FROM_THE_START: FeedCursor = { positions: new Map(), rest: 0 };

export const positionIn = (cursor: FeedCursor, feed: Feed): number =>
  cursor.positions.get(feed.home) ?? cursor.rest;

const PREFIX = "f1:";
const ENTRY = /^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,14})$/;

/** The cursor as the API gives it: opaque, base64url of `f1:home.position,…`. */
export function encodeFeedCursor(cursor: FeedCursor, feeds: Feed[]): string {
  const entries = feeds
    .map((feed) => [feed.home, positionIn(cursor, feed)] as const)
    .filter(([, position]) => position > 0)
    .map(([home, position]) => `${home}.${position}`);
  return Buffer.from(`${PREFIX}${entries.join(",")}`).toString("base64url");
}

/** The cursor a string names, or undefined when it is not one this API gave. */
export function decodeFeedCursor(text: string): FeedCursor | undefined {
  const legacy = decodeCursor(text);
  if (legacy !== undefined) {
    return /^(0|[1-9][0-9]{0,14})$/.test(legacy)
      ? { positions: new Map(), rest: Number(legacy) }
      : undefined;
  }
  if (!/^[A-Za-z0-9_-]{1,32768}$/.test(text)) return undefined;
  const decoded = Buffer.from(text, "base64url").toString();
  if (!decoded.startsWith(PREFIX)) return undefined;
  const body = decoded.slice(PREFIX.length);
  const positions = new Map<number, number>();
  for (const entry of body === "" ? [] : body.split(",")) {
    const match = ENTRY.exec(entry);
    if (!match || positions.has(Number(match[1]))) return undefined;
    positions.set(Number(match[1]), Number(match[2]));
  }
  return { positions, rest: 0 };
}
