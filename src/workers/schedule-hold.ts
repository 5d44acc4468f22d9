import { MicroBatcher } from "../db/micro-batcher.ts";
import type { Hold } from "../reservations/hold.ts";
import { expireJob, fulfilJob, type HoldQueues } from "./queues.ts";

export interface ScheduleOptions {
  /** Whether FULFILMENT_URL is set: only then does a hold get a fulfil job. */
  fulfilment: boolean;
  /** First retry delay of the fulfil job (tests shorten it). */
  retryBaseMs?: number | undefined;
}

type Scheduled = Pick<Hold, "id" | "expiresAt">;

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
  if (holds.length === 0) return;
  await Promise.all([
    queues.expire.addBulk(holds.map((hold) => expireJob(hold, now))),
    options.fulfilment
      ? queues.fulfil.addBulk(holds.map((hold) => fulfilJob(hold, options, now)))
      : undefined,
  ]);
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
