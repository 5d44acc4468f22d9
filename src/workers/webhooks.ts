import { DelayedError, type Job, type Queue, Worker, type WorkerOptions } from "bullmq";
import type { Database } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { type DeliveryOptions, deliverLane, WebhookDeliveryError } from "../webhooks/deliver.ts";
import { type DeliveryLane, dispatchEvents } from "../webhooks/dispatch.ts";
import { parsePayload, QUEUE_NAMES, WebhookJobData } from "./queues.ts";

/** How often each worker process looks for events to dispatch and lanes that are due. */
export const DISPATCH_EVERY_MS = 250;

/** `webhook · alice · hold.settled #5`: the dashboard lists the lanes by account and event. */
const laneName = (lane: DeliveryLane) =>
  `webhook · ${lane.accountId} · ${lane.type} #${lane.sequence}`;

/** One job per lane at a time: the id is the lane's. */
export const laneJobId = (lane: Pick<DeliveryLane, "endpointId" | "accountId">) =>
  `webhook-${lane.endpointId}-${lane.accountId}`;

/**
 * Enqueues a job for each lane that is due. A lane already queued, running or waiting for its
 * next attempt is not enqueued again: the job id is the lane's, and a lane's job never fails
 * (see startWebhooks), so no failed job can hold its id.
 */
export async function enqueueLanes(queue: Queue<WebhookJobData>, lanes: DeliveryLane[]) {
  if (lanes.length === 0) return;
  await queue.addBulk(
    lanes.map((lane) => ({
      name: laneName(lane),
      data: { endpointId: lane.endpointId, bucket: lane.bucket, accountId: lane.accountId },
      opts: { jobId: laneJobId(lane), removeOnComplete: true, removeOnFail: true },
    })),
  );
}

/** When a lane whose attempt failed for another reason (a database error) is tried again. */
const LANE_RETRY_MS = 1000;

/**
 * The webhook delivery worker and, in the same process, the dispatcher: every
 * DISPATCH_EVERY_MS it turns new events into deliveries and enqueues the due lanes
 * (dispatchEvents, enqueueLanes). Both read Postgres, so losing Redis, or this process, loses
 * no delivery: the next tick of any worker process finds the same lanes.
 */
export function startWebhooks(options: {
  db: Database;
  queue: Queue<WebhookJobData>;
  worker: WorkerOptions;
  delivery: DeliveryOptions;
  logger: Logger;
  dispatchEveryMs?: number;
}): { worker: Worker; stop(): void } {
  const { db, queue, logger, delivery } = options;
  const worker = new Worker<WebhookJobData>(
    QUEUE_NAMES.webhooks,
    async (job: Job<WebhookJobData>, token?: string) => {
      const lane = parsePayload(WebhookJobData, job.data);
      const log = (line: string) => job.log(line).catch(() => 0);
      try {
        return { delivered: await deliverLane(db, lane, delivery, log) };
      } catch (error) {
        // The job waits, delayed and visible with its log, for the lane's next attempt; the
        // database holds when that is, so a wiped Redis loses nothing but the wait.
        const retryAt =
          error instanceof WebhookDeliveryError ? error.retryAt : Date.now() + LANE_RETRY_MS;
        if (!(error instanceof WebhookDeliveryError))
          await log(`failed: ${(error as Error).message}; trying again shortly`);
        await job.moveToDelayed(retryAt, token);
        throw new DelayedError();
      }
    },
    { ...options.worker, concurrency: 50 },
  );
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    dispatchEvents(db)
      .then((lanes) => enqueueLanes(queue, lanes))
      .catch((err) => logger.warn({ err }, "webhook dispatch failed; the next tick retries"))
      .finally(() => {
        ticking = false;
      });
  }, options.dispatchEveryMs ?? DISPATCH_EVERY_MS);
  timer.unref();
  return { worker, stop: () => clearInterval(timer) };
}
