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
