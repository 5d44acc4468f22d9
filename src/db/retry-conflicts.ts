import { isTransientConflict } from "./errors.ts";

/** Runs of a transaction that Postgres aborted as a deadlock victim, after the first. */
const CONFLICT_RETRIES = 2;

/**
 * Runs `transaction` again when Postgres aborted it as a deadlock victim (or a serialization
 * failure): it was rolled back whole, so running it again is safe, and a conflict between two
 * batches (a release against a worker's batched settles on the same account) must not reach
 * the caller as an error.
 */
export async function retryingConflicts<T>(transaction: () => Promise<T>): Promise<T> {
  for (let retry = 0; ; retry++) {
    try {
      return await transaction();
    } catch (error) {
      if (!isTransientConflict(error) || retry >= CONFLICT_RETRIES) throw error;
    }
  }
}

/**
 * Applies `items` in one transaction with `apply`; if that fails as a whole (a deadlock with
 * another batch, a lock timeout, a lost connection), applies each item alone, again if it was
 * a deadlock victim, so that one item's trouble is never its batch-mates' error. `apply`
 * answers one settlement per item, in order.
 */
export async function batchThenAlone<I, R>(
  items: I[],
  apply: (items: I[]) => Promise<PromiseSettledResult<R>[]>,
): Promise<PromiseSettledResult<R>[]> {
  try {
    return await apply(items);
  } catch (error) {
    if (items.length === 1 && !isTransientConflict(error))
      return [{ status: "rejected", reason: error }];
    return Promise.all(
      items.map(async (item) => {
        try {
          return (await retryingConflicts(() => apply([item])))[0]!;
        } catch (reason) {
          return { status: "rejected", reason } as const;
        }
      }),
    );
  }
}
