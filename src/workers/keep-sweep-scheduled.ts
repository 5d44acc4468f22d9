import type { Queue } from "bullmq";
import type { Logger } from "../logger.ts";
import type { SweepJobData } from "./queues.ts";

export const SWEEP_SCHEDULER_ID = "sweep";
const MAX_CHECK_EVERY_MS = 5_000;

/** Creates the sweep's job scheduler, or updates its interval. Idempotent. */
export async function upsertSweepScheduler(queue: Queue<SweepJobData>, everyMs: number) {
  await queue.upsertJobScheduler(
    SWEEP_SCHEDULER_ID,
    { every: everyMs },
    {
      name: "sweep",
      data: {},
      opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
    },
  );
}

/**
 * Keeps the sweep scheduled. The scheduler lives in Redis, so a FLUSHDB or a failover to an
 * empty replica deletes it along with every job, and then nothing would ever sweep again.
 * Every worker process therefore upserts it on start (which also applies a changed
 * HOLDFAST_SWEEP_INTERVAL_MS; the last worker to start wins) and then checks every interval
 * (at most every 5 s) that it still exists, recreating it if not, which runs a sweep at once.
 * The check is one read; upserting on every tick instead would rewrite the scheduler's next job
 * from every worker all the time.
 */
export async function keepSweepScheduled(
  queue: Queue<SweepJobData>,
  options: { everyMs: number; logger: Logger },
): Promise<{ stop(): void }> {
  const { everyMs, logger } = options;
  await upsertSweepScheduler(queue, everyMs);
  let checking = false;
  const timer = setInterval(
    () => {
      if (checking) return;
      checking = true;
      queue
        .getJobScheduler(SWEEP_SCHEDULER_ID)
        .then(async (scheduler) => {
          if (scheduler) return;
          await upsertSweepScheduler(queue, everyMs);
          logger.warn("the sweep's job scheduler was missing from Redis; recreated it");
        })
        .catch((err) => logger.warn({ err }, "could not check the sweep's job scheduler"))
        .finally(() => {
          checking = false;
        });
    },
    Math.min(everyMs, MAX_CHECK_EVERY_MS),
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
