import { hostname } from "node:os";
import { type Job, Worker, type WorkerOptions } from "bullmq";
import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import type { Logger } from "../logger.ts";
import { connectRedis, type RedisTarget } from "../process/connections.ts";
import { batchedFind, batchedSettle } from "./batched-settle.ts";
import { expireJobProcessor } from "./expire-job.ts";
import { fulfilHoldProcessor } from "./fulfil-hold.ts";
import { expireOutcomeLine, fulfilOutcomeLine, withJobLog } from "./job-log.ts";
import { keepSweepScheduled } from "./keep-sweep-scheduled.ts";
import { createHoldQueues, type HoldQueues, QUEUE_NAMES } from "./queues.ts";
import { cappedBackoff } from "./retry-schedule.ts";
import { batchedUnscheduler } from "./schedule-hold.ts";
import { sweepJobProcessor } from "./sweep-holds.ts";
import { startWebhooks } from "./webhooks.ts";

/**
 * Stalled-job recovery. A worker that dies (SIGKILL, OOM, a lost host) stops renewing the locks
 * of its active jobs; once a lock has expired, the next stalled check moves the job back to
 * wait and another worker runs it again. BullMQ's defaults (30 s lock, 30 s checks) take up to
 * a minute and a half to notice; these take 5 to 10 s. The cost of short locks is a false
 * stall when a worker's event loop is blocked for longer than half the lock (renewals happen
 * every 2.5 s), and here that is harmless: every processor is idempotent, and the webhook
 * carries an Idempotency-Key. A job may stall twice before it fails (then the sweep and the
 * expire job still resolve its hold).
 */
export const LOCK_DURATION_MS = 5_000;
export const STALLED_INTERVAL_MS = 2_500;
const MAX_STALLED_COUNT = 2;

export interface WorkerTuning {
  /** Fulfilment webhook timeout, 10 s by default. */
  fulfilTimeoutMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** First retry delay of fulfil jobs the sweep enqueues again (tests shorten it). */
  retryBaseMs?: number;
  /** First retry delay of a webhook delivery, 1 s by default (tests shorten it). */
  webhookRetryBaseMs?: number;
  webhookTimeoutMs?: number;
}

export interface StartWorkersOptions {
  db: Database;
  env: Pick<
    Env,
    | "FULFILMENT_URL"
    | "FULFILMENT_SECRET"
    | "HOLDFAST_SWEEP_INTERVAL_MS"
    | "HOLDFAST_QUEUE_PREFIX"
    | "HOLDFAST_FULFIL_CONCURRENCY"
    | "HOLDFAST_WEBHOOK_RETRY_HOURS"
  >;
  logger: Logger;
  /** REDIS_URL, or the cluster of REDIS_CLUSTER_NODES (see redisTarget). */
  redis: RedisTarget;
  tuning?: WorkerTuning;
}

export interface RunningWorkers {
  /** The queues on the workers' own connection (the sweep enqueues through them). */
  queues: HoldQueues;
  /** Stops taking jobs, waits for the jobs in hand to finish, then closes the connections. */
  close(): Promise<void>;
}

/**
 * Runs the expire, fulfil (when FULFILMENT_URL is set) and sweep workers. They keep no state of
 * their own, so any number of worker processes can run against one Redis and one Postgres.
 */
export async function startWorkers(options: StartWorkersOptions): Promise<RunningWorkers> {
  const { db, env, logger, tuning = {} } = options;
  // BullMQ requires maxRetriesPerRequest: null on worker connections: commands wait for a
  // reconnect instead of failing the job loop.
  const connection = await connectRedis(options.redis, {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
  });
  const prefix = env.HOLDFAST_QUEUE_PREFIX;
  const queues = createHoldQueues(connection, { prefix });
  const common: WorkerOptions = {
    connection,
    prefix,
    name: `${hostname()}-${process.pid}`,
    lockDuration: tuning.lockDurationMs ?? LOCK_DURATION_MS,
    stalledInterval: tuning.stalledIntervalMs ?? STALLED_INTERVAL_MS,
    maxStalledCount: MAX_STALLED_COUNT,
    settings: { backoffStrategy: cappedBackoff },
  };
  const fulfilment = env.FULFILMENT_URL
    ? { url: env.FULFILMENT_URL, secret: env.FULFILMENT_SECRET, timeoutMs: tuning.fulfilTimeoutMs }
    : undefined;

  const workers: Worker[] = [
    new Worker(QUEUE_NAMES.expire, withJobLog(expireJobProcessor(db), expireOutcomeLine, logger), {
      ...common,
      concurrency: 20,
    }),
    new Worker(
      QUEUE_NAMES.sweep,
      sweepJobProcessor({
        db,
        queues,
        fulfilment: fulfilment !== undefined,
        retryBaseMs: tuning.retryBaseMs,
        logger,
      }),
      { ...common, concurrency: 1 },
    ),
  ];
  if (fulfilment) {
    workers.push(
      new Worker(
        QUEUE_NAMES.fulfil,
        withJobLog(
          fulfilHoldProcessor({
            db,
            fulfilment,
            logger,
            settle: batchedSettle(db),
            find: batchedFind(db),
            resolved: batchedUnscheduler(queues),
          }),
          fulfilOutcomeLine,
          logger,
        ),
        // Mostly waiting on the webhook: many jobs in flight, their settles batched.
        { ...common, concurrency: env.HOLDFAST_FULFIL_CONCURRENCY },
      ),
    );
  }
  const webhooks = startWebhooks({
    db,
    queue: queues.webhooks,
    worker: common,
    delivery: {
      retryHours: env.HOLDFAST_WEBHOOK_RETRY_HOURS,
      retryBaseMs: tuning.webhookRetryBaseMs ?? 1000,
      timeoutMs: tuning.webhookTimeoutMs,
    },
    logger,
  });
  workers.push(webhooks.worker);
  for (const worker of workers) {
    worker.on("error", (err) => logger.error({ err, queue: worker.name }, "worker error"));
    worker.on("failed", (job: Job | undefined, err: Error) =>
      logger.warn(
        {
          queue: worker.name,
          jobId: job?.id,
          attemptsMade: job?.attemptsMade,
          reason: err.message,
        },
        "job attempt failed",
      ),
    );
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  const scheduler = await keepSweepScheduled(queues.sweep, {
    everyMs: env.HOLDFAST_SWEEP_INTERVAL_MS,
    logger,
  });
  logger.info(
    { queues: workers.map((w) => w.name), prefix, fulfilment: fulfilment?.url ?? null },
    "holdfast workers running",
  );

  let closing: Promise<void> | undefined;
  return {
    queues,
    close: () => {
      closing ??= (async () => {
        scheduler.stop();
        webhooks.stop();
        await Promise.all(workers.map((w) => w.close()));
        await queues.close();
        await connection.quit().catch(() => connection.disconnect());
      })();
      return closing;
    },
  };
}
