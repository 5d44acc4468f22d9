import { PgTransaction } from "drizzle-orm/pg-core";
import { DeferredCounts } from "../metrics.ts";
import type { Db, Tx } from "./client.ts";
import { retryingConflicts } from "./retry-conflicts.ts";

/**
 * Runs `fn` in a transaction: the caller's, when `db` is one (a write path batch, a
 * savepoint), or a new one, run again if it was a deadlock victim or a serialization failure
 * (as the write path runs its own). For a change and its events, which commit together or not
 * at all.
 */
export async function atomically<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (db instanceof PgTransaction) return fn(db as Tx);
  return retryingConflicts(async () => {
    const counts = new DeferredCounts();
    const result = await db.transaction((tx) => {
      counts.cover(tx);
      return fn(tx);
    });
    counts.commit();
    return result;
  });
}
