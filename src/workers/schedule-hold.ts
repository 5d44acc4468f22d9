import type { Hold } from "../reservations/hold.ts";
import { enqueueExpire, enqueueFulfil, type HoldQueues } from "./queues.ts";

export interface ScheduleOptions {
  /** Whether FULFILMENT_URL is set: only then does a hold get a fulfil job. */
  fulfilment: boolean;
  /** First retry delay of the fulfil job (tests shorten it). */
  retryBaseMs?: number | undefined;
}

/**
 * Enqueues a committed hold's jobs: the expire job at its deadline and, with a fulfilment
 * webhook, the fulfil job now. Safe to call any number of times for the same hold.
 */
export async function scheduleHold(
  queues: HoldQueues,
  hold: Pick<Hold, "id" | "expiresAt">,
  options: ScheduleOptions,
): Promise<void> {
  await Promise.all([
    enqueueExpire(queues, hold),
    options.fulfilment ? enqueueFulfil(queues, hold, options) : undefined,
  ]);
}
