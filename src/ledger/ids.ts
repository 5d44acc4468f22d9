import { createHash, randomFillSync } from "node:crypto";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { BUCKETS } from "../db/schema/bucket.ts";

export const SYSTEM_ACCOUNTS = ["@issuance", "@revenue", "@promotions", "@adjustments"] as const;
export type SystemAccountId = (typeof SYSTEM_ACCOUNTS)[number];

export const USER_ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const isSystemAccountId = (id: string): boolean => id.startsWith("@");

/**
 * The bucket of a user account: the first 12 bits of the MD5 of its id. holdfast_bucket
 * (src/db/sql/bucket.sql) is the same function in SQL, for the CHECK that keeps each account in
 * its bucket; test/db/buckets.test.ts checks that the two agree.
 */
export function bucketOf(accountId: string): number {
  let bucket = knownBuckets.get(accountId);
  if (bucket === undefined) {
    const digest = createHash("md5").update(accountId).digest();
    bucket = ((digest[0]! << 4) | (digest[1]! >> 4)) % BUCKETS;
    if (knownBuckets.size >= KNOWN_BUCKETS_MAX) knownBuckets.clear();
    knownBuckets.set(accountId, bucket);
  }
  return bucket;
}

/**
 * The buckets of recently seen accounts: a purchase asks for its account's bucket several
 * times (its key, its lock order, its hold id, its event), and an MD5 costs more than a look-up.
 */
const knownBuckets = new Map<string, number>();
const KNOWN_BUCKETS_MAX = 100_000;

const hex3 = (bucket: number) => bucket.toString(16).padStart(3, "0");

/**
 * A time-ordered UUID (v7) whose last 12 bits are `bucket`: ids still sort by creation, to the
 * millisecond, which keeps "newest first" an index scan, and a hold or transaction id names its
 * bucket, so a request that carries only the id reaches its shard directly.
 */
export const newIdIn = (bucket: number): string => nextV7().slice(0, -3) + hex3(bucket);

/**
 * uuid's v7() with its random bytes from a pool refilled 256 ids at a time: v7() alone asks
 * crypto.getRandomValues for every id, ten times the cost of the rest. Given bytes, v7() keeps
 * no state, so `clock` does what it keeps for ids made in one millisecond: a counter that starts
 * at random and counts up, which keeps the ids of one process in the order they were made.
 */
function nextV7(): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const random = pool.subarray(used, used + 16);
  used += 16;
  const now = Date.now();
  if (now > clock.msecs) {
    clock.msecs = now;
    clock.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
  } else {
    clock.seq = (clock.seq + 1) | 0;
    if (clock.seq === 0) clock.msecs++;
  }
  return v7({ msecs: clock.msecs, seq: clock.seq, random });
}
const pool = new Uint8Array(16 * 256);
let used = pool.length;
const clock = { msecs: Number.NEGATIVE_INFINITY, seq: 0 };

/** The bucket an id made by newIdIn carries. */
export const bucketOfId = (id: string): number => Number.parseInt(id.slice(-3), 16) % BUCKETS;

/**
 * The order in which every transaction locks account rows: by bucket, then by id in byte order
 * (COLLATE "C" in SQL; account ids are ASCII, so this is JavaScript's string order). User
 * accounts are all locked before any system row, and system rows by bucket.
 */
export const lockKey = (accountId: string): string => `${hex3(bucketOf(accountId))}:${accountId}`;

/** `bucket = … AND` for a user account's rows; nothing for a system account's, which are in every bucket. */
export const bucketFilter = (accountId: string) =>
  isSystemAccountId(accountId) ? sql`` : sql`bucket = ${bucketOf(accountId)} AND`;
