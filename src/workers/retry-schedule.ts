import type { BackoffStrategy } from "bullmq";

/** The backoff type fulfil jobs name; the worker's `settings.backoffStrategy` implements it. */
export const CAPPED_BACKOFF = "capped-exponential";
/** First retry after about a second, doubling, but never more than two minutes apart. */
export const RETRY_BASE_MS = 1_000;
export const RETRY_CAP_MS = 120_000;

/** The delay before retry number `attempt` (1 = the first retry), without jitter. */
export function retryDelay(attempt: number, baseMs: number): number {
  const exponent = Math.min(attempt - 1, 30);
  return Math.min(baseMs * 2 ** exponent, RETRY_CAP_MS);
}

/**
 * Capped exponential backoff with 20 % downward jitter, so that holds that failed together (a
 * fulfilment outage) do not all retry in the same instant when it ends.
 */
export const cappedBackoff: BackoffStrategy = (attemptsMade, _type, _err, job) => {
  const base = job?.opts.backoff;
  const baseMs =
    typeof base === "object" && typeof base.delay === "number" ? base.delay : RETRY_BASE_MS;
  const delay = retryDelay(attemptsMade, baseMs);
  return Math.floor(delay * (0.8 + 0.2 * Math.random()));
};

/**
 * How many attempts it takes for the retries to reach `deadline`: the webhook keeps being
 * retried for as long as the hold can still be settled, and no longer (the processor also
 * stops once the hold has left `pending` or its deadline has passed). Counted with the
 * shortest delays jitter can draw, so the retries reach the deadline anyway.
 *
 * The delays double for at most 31 steps, then stay at the cap: those are counted one by one,
 * the rest by division, since the sweep computes this for every pending hold.
 */
export function attemptsUntil(deadline: number, now: number, baseMs: number): number {
  const remaining = deadline - now;
  let attempts = 1;
  let elapsed = 0;
  while (elapsed < remaining && retryDelay(attempts, baseMs) < RETRY_CAP_MS) {
    elapsed += retryDelay(attempts, baseMs) * 0.8;
    attempts++;
  }
  if (elapsed < remaining) attempts += Math.ceil((remaining - elapsed) / (RETRY_CAP_MS * 0.8));
  return attempts + 1;
}
