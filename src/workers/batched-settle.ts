import type { Database } from "../db/client.ts";
import { MicroBatcher } from "../db/micro-batcher.ts";
import { batchThenAlone } from "../db/retry-conflicts.ts";
import { shardsOf } from "../db/shards.ts";
import { bucketOfId } from "../ledger/ids.ts";
import { findHolds, type Hold } from "../reservations/hold.ts";
import { type SettleInput, settleHolds } from "../reservations/settle-hold.ts";

/**
 * Settles from concurrent fulfil jobs gathered for at most 2 ms and applied in one statement
 * (settleHolds), so a worker shares one commit among many settlements; holds of different
 * shards go to different batches. A batch that fails as
 * a whole (a lost connection, a lock timeout, a deadlock victim) is settled hold by hold.
 */
export function batchedSettle(db: Database): (input: SettleInput) => Promise<Hold> {
  const newBatcher = () =>
    new MicroBatcher<SettleInput, Hold>(
      (inputs) =>
        batchThenAlone(inputs, async (batch) =>
          (await settleHolds(db, batch)).map((result) =>
            result instanceof Error
              ? { status: "rejected", reason: result }
              : { status: "fulfilled", value: result },
          ),
        ),
      { maxSize: 100, windowMs: 2, concurrency: 2 },
    );
  // One batcher per shard, so that each batch is a single-shard transaction.
  const batchers = new Map<number, ReturnType<typeof newBatcher>>();
  return async (input) => {
    const shard = (await shardsOf(db)).of(bucketOfId(input.holdId));
    let batcher = batchers.get(shard);
    if (!batcher) {
      batcher = newBatcher();
      batchers.set(shard, batcher);
    }
    return batcher.submit(input);
  };
}

/**
 * Hold look-ups from concurrent fulfil jobs gathered for at most 1 ms into one query, so that
 * a worker with many jobs in flight does not pay a round trip to Postgres for each.
 */
export function batchedFind(db: Database): (holdId: string) => Promise<Hold | undefined> {
  const batcher = new MicroBatcher<string, Hold | undefined>(
    async (ids) => (await findHolds(db, ids)).map((value) => ({ status: "fulfilled", value })),
    { maxSize: 100, windowMs: 1, concurrency: 2 },
  );
  return (holdId) => batcher.submit(holdId);
}
