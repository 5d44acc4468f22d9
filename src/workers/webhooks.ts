import { type Job, type Queue, Worker, type WorkerOptions } from "bullmq";
import type { Database } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { type DeliveryOptions, deliverLane } from "../webhooks/deliver.ts";
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
 * Enqueues a job for each lane that is due: a lane already queued or running is not enqueued
 * again (the job id), and a lane whose job failed (a delivery to retry, or a database error on
 * the way) gets that job retried, so the dashboard keeps one job per lane, with its errors.
 */
export async function enqueueLanes(queue: Queue<WebhookJobData>, lanes: DeliveryLane[]) {
  if (lanes.length === 0) return;
  await queue.addBulk(
    lanes.map((lane) => ({
      name: laneName(lane),
      data: { endpointId: lane.endpointId, bucket: lane.bucket, accountId: lane.accountId },
      opts: {
        jobId: laneJobId(lane),
        removeOnComplete: true,
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    })),
  );
  const due = new Set(lanes.map(laneJobId));
  for (const job of await queue.getFailed(0, 999)) {
    if (job.id && due.has(job.id)) await job.retry("failed").catch(() => {});
  }
}

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
    async (job: Job<WebhookJobData>) => {
      const lane = parsePayload(WebhookJobData, job.data);
      const delivered = await deliverLane(db, lane, delivery, (line) =>
        job.log(line).catch(() => 0),
      );
      return { delivered };
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
