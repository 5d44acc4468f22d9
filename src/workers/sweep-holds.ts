import type { Job } from "bullmq";
import type { Database } from "../db/client.ts";
import { purgeIdempotencyKeys } from "../http/idempotency.ts";
import type { Logger } from "../logger.ts";
import { pendingHolds } from "../reservations/list-holds.ts";
import { expireOverdueHolds } from "../reservations/release-hold.ts";
import { type HoldQueues, parsePayload, SweepJobData } from "./queues.ts";
import { scheduleHolds } from "./schedule-hold.ts";

const BATCH = 500;

export interface SweepDeps {
  db: Database;
  queues: HoldQueues;
  /** Whether FULFILMENT_URL is set, so pending holds need a fulfil job too. */
  fulfilment: boolean;
  retryBaseMs?: number | undefined;
  batchSize?: number | undefined;
}

export interface SweepResult {
  /** Holds past their deadline that the sweep expired itself. */
  expired: number;
  /** Pending holds whose jobs were enqueued again (a no-op for those that still have them). */
  rescheduled: number;
  purgedIdempotencyKeys: number;
}

/**
 * Makes Postgres, not Redis, the source of truth for holds: (a) expires every overdue pending
 * hold, so a hold whose expire job is lost or failed still ends by its deadline plus one sweep
 * interval; (b) enqueues the jobs of every pending hold again under their deterministic ids,
 * which recreates exactly the jobs Redis lost (a FLUSHDB, a failover) and leaves the others
 * alone; (c) purges idempotency keys past their retention.
 *
 * (b) costs one pipelined no-op per pending hold per interval, which stays cheap for the
 * number of holds a deadline of at most a week allows at a few thousand purchases a second.
 */
export async function sweepHolds(deps: SweepDeps): Promise<SweepResult> {
  const batch = deps.batchSize ?? BATCH;
  let expired = 0;
  for (;;) {
    const ids = await expireOverdueHolds(deps.db, batch);
    expired += ids.length;
    // Fewer than a batch: none left, or the rest are locked by a settle or another sweeper.
    if (ids.length < batch) break;
  }

  let rescheduled = 0;
  let after: Parameters<typeof pendingHolds>[2];
  for (;;) {
    const page = await pendingHolds(deps.db, batch, after);
    if (page.length === 0) break;
    await scheduleHolds(deps.queues, page, deps);
    rescheduled += page.length;
    if (page.length < batch) break;
    after = page[page.length - 1];
  }

  const purgedIdempotencyKeys = await purgeIdempotencyKeys(deps.db);
  return { expired, rescheduled, purgedIdempotencyKeys };
}

export function sweepJobProcessor(deps: SweepDeps & { logger: Logger }) {
  return async (job: Pick<Job, "data">): Promise<SweepResult> => {
    parsePayload(SweepJobData, job.data);
    const result = await sweepHolds(deps);
    if (result.expired > 0 || result.purgedIdempotencyKeys > 0)
      deps.logger.info(result, "sweep expired overdue holds or purged idempotency keys");
    return result;
  };
}
