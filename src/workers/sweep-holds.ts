import type { Job } from "bullmq";
import type { Database } from "../db/client.ts";
import { shardsOf } from "../db/shards.ts";
import type { Logger } from "../logger.ts";
import { pendingHolds } from "../reservations/list-holds.ts";
import { expireOverdueHolds } from "../reservations/release-hold.ts";
import { purgeIdempotencyKeys } from "../writes/purge-keys.ts";
import { type HoldQueues, parsePayload, SweepJobData } from "./queues.ts";
import { scheduleMissing } from "./schedule-hold.ts";

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
  /** Pending holds that had lost a job and got it again. */
  rescheduled: number;
  purgedIdempotencyKeys: number;
}

/**
 * Makes Postgres, not Redis, the source of truth for holds: (a) expires every overdue pending
 * hold, so a hold whose expire job is lost or failed still ends by its deadline plus one sweep
 * interval; (b) enqueues again, under their deterministic ids, the jobs of pending holds that
 * Redis lost (a FLUSHDB, a failover); (c) purges idempotency keys past their retention.
 *
 * (b) reads every pending hold, a page at a time, and asks Redis whether its jobs exist: one
 * pipelined EXISTS per job per interval. At thousands of purchases a second with deadlines of
 * days, that is millions of holds per sweep; HOLDFAST_SWEEP_INTERVAL_MS trades that cost
 * against how soon lost jobs come back.
 */
export async function sweepHolds(deps: SweepDeps): Promise<SweepResult> {
  const batch = deps.batchSize ?? BATCH;
  const { groups } = await shardsOf(deps.db);
  let expired = 0;
  let purgedIdempotencyKeys = 0;
  for (const buckets of groups) {
    for (;;) {
      const ids = await expireOverdueHolds(deps.db, batch, buckets);
      expired += ids.length;
      // Fewer than a batch: none left, or the rest are locked by a settle or another sweeper.
      if (ids.length < batch) break;
    }
    purgedIdempotencyKeys += await purgeIdempotencyKeys(deps.db, buckets);
  }

  let rescheduled = 0;
  let after: Parameters<typeof pendingHolds>[2];
  for (;;) {
    const page = await pendingHolds(deps.db, batch, after);
    if (page.length === 0) break;
    rescheduled += await scheduleMissing(deps.queues, page, deps);
    if (page.length < batch) break;
    after = page[page.length - 1];
  }

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
