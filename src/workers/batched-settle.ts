import type { Database } from "../db/client.ts";
import { isTransientConflict } from "../db/errors.ts";
import { MicroBatcher } from "../db/micro-batcher.ts";
import { retryingConflicts } from "../db/retry-conflicts.ts";
import { findHolds, type Hold } from "../reservations/hold.ts";
import { type BatchedSettle, settleHolds } from "../reservations/settle-hold.ts";

/**
 * Settles from concurrent fulfil jobs gathered for at most 2 ms and applied in one transaction
 * (settleHolds), so a worker shares one commit among many settlements. If a batch fails as a
 * whole (a deadlock with an API settle of the same account, a connection lost), each settle
 * is run alone (again if it was a deadlock victim), and each job gets its own outcome.
 */
export function batchedSettle(db: Database): (input: BatchedSettle) => Promise<Hold> {
  const batcher = new MicroBatcher<BatchedSettle, Hold>(
    async (inputs) => {
      try {
        return await settleHolds(db, inputs);
      } catch (error) {
        if (inputs.length === 1 && !isTransientConflict(error))
          return [{ status: "rejected", reason: error }];
        return Promise.all(
          inputs.map(async (input) => {
            try {
              return (await retryingConflicts(() => settleHolds(db, [input])))[0]!;
            } catch (reason) {
              return { status: "rejected", reason } as const;
            }
          }),
        );
      }
    },
    { maxSize: 100, windowMs: 2, concurrency: 2 },
  );
  return (input) => batcher.submit(input);
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
