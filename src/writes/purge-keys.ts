import { and, lt, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { idempotencyKeys } from "../db/schema/index.ts";
import { bucketArray } from "../ledger/rows.ts";

/** Replays are guaranteed for this long; the purge removes older keys. */
export const IDEMPOTENCY_RETENTION_HOURS = 24;

/**
 * Deletes keys older than the retention period, of the buckets `inBuckets` when given (the
 * sweep goes shard by shard); safe to run from any number of processes.
 */
export async function purgeIdempotencyKeys(db: Database, inBuckets?: number[]): Promise<number> {
  const old = lt(
    idempotencyKeys.createdAt,
    sql`now() - make_interval(hours => ${IDEMPOTENCY_RETENTION_HOURS})`,
  );
  const deleted = await db
    .delete(idempotencyKeys)
    .where(
      inBuckets ? and(sql`${idempotencyKeys.bucket} = ANY (${bucketArray(inBuckets)})`, old) : old,
    )
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}
