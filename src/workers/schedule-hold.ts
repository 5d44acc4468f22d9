import { MicroBatcher } from "../db/micro-batcher.ts";
import {
  expireJob,
  expireJobId,
  fulfilJob,
  fulfilJobId,
  type HoldQueues,
  type JobHold,
} from "./queues.ts";

export interface ScheduleOptions {
  /** Whether FULFILMENT_URL is set: only then does a hold get a fulfil job. */
  fulfilment: boolean;
  /** First retry delay of the fulfil job (tests shorten it). */
  retryBaseMs?: number | undefined;
}

type Scheduled = JobHold;

/**
 * Enqueues committed holds' jobs: the expire job at each deadline and, with a fulfilment
 * webhook, the fulfil job now, with one addBulk (one MULTI) per queue. Safe to call any number
 * of times for the same holds: the job ids are derived from the hold ids.
 */
export async function scheduleHolds(
  queues: HoldQueues,
  holds: Scheduled[],
  options: ScheduleOptions,
  now = Date.now(),
): Promise<void> {
  await addJobs(queues, { expire: holds, fulfil: options.fulfilment ? holds : [] }, options, now);
}

/** One addBulk per queue that has holds to enqueue. */
async function addJobs(
  queues: HoldQueues,
  holds: { expire: Scheduled[]; fulfil: Scheduled[] },
  options: ScheduleOptions,
  now: number,
): Promise<void> {
  await Promise.all([
    holds.expire.length > 0 &&
      queues.expire.addBulk(holds.expire.map((hold) => expireJob(hold, now))),
    holds.fulfil.length > 0 &&
      queues.fulfil.addBulk(holds.fulfil.map((hold) => fulfilJob(hold, options, now))),
  ]);
}

/**
 * The sweep's enqueue: only the jobs Redis no longer has (a FLUSHDB, a failover) are enqueued
 * again. One pipelined EXISTS per job finds them; re-adding every job instead costs a script
 * call per job, a no-op for the jobs that exist, which is most of them. A job that is added
 * meanwhile is no harm: adding it again is a no-op. Answers how many holds needed jobs.
 */
export async function scheduleMissing(
  queues: HoldQueues,
  holds: Scheduled[],
  options: ScheduleOptions,
  now = Date.now(),
): Promise<number> {
  const pipeline = queues.redis.pipeline();
  for (const hold of holds) {
    pipeline.exists(queues.expire.toKey(expireJobId(hold.id)));
    if (options.fulfilment) pipeline.exists(queues.fulfil.toKey(fulfilJobId(hold.id)));
  }
  const exists = ((await pipeline.exec()) ?? []).map(([error, count]) => {
    if (error) throw error;
    return count === 1;
  });
  const perHold = options.fulfilment ? 2 : 1;
  const noExpire = holds.filter((_, i) => !exists[i * perHold]);
  const noFulfil = options.fulfilment ? holds.filter((_, i) => !exists[i * perHold + 1]) : [];
  await addJobs(queues, { expire: noExpire, fulfil: noFulfil }, options, now);
  return new Set([...noExpire, ...noFulfil]).size;
}

export const scheduleHold = (queues: HoldQueues, hold: Scheduled, options: ScheduleOptions) =>
  scheduleHolds(queues, [hold], options);

/**
 * scheduleHold for the API: the holds of concurrent purchases (a batch of the write path
 * commits them together) are enqueued together, one round trip to Redis instead of a script
 * call per hold. If Redis refuses, every hold of the batch gets the error; the sweep enqueues
 * them later.
 */
export function batchedScheduler(
  queues: HoldQueues,
  options: ScheduleOptions,
): (hold: Scheduled) => Promise<void> {
  const batcher = new MicroBatcher<Scheduled, void>(
    async (holds) => {
      await scheduleHolds(queues, holds, options);
      return holds.map(() => ({ status: "fulfilled", value: undefined }));
    },
    { maxSize: 256, windowMs: 1, concurrency: 4 },
  );
  return (hold) => batcher.submit(hold);
}

/**
 * Removes the expire jobs of holds that were settled or released, gathered for at most 1 ms, so
 * that the dashboard's delayed count is the pending holds. Best effort: a job that is running
 * or already gone stays as it is, and an expire job that runs for a resolved hold does nothing.
 */
export function batchedUnscheduler(queues: HoldQueues): (holdId: string) => Promise<void> {
  const batcher = new MicroBatcher<string, void>(
    async (holdIds) => {
      await Promise.all(holdIds.map((id) => queues.expire.remove(expireJobId(id)).catch(() => 0)));
      return holdIds.map(() => ({ status: "fulfilled", value: undefined }));
    },
    { maxSize: 256, windowMs: 1, concurrency: 4 },
  );
  return (holdId) => batcher.submit(holdId);
}
