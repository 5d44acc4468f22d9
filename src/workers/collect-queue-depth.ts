import type { JobType, Queue } from "bullmq";
import { onQueueDepthScrape, queueDepth } from "../metrics.ts";

const STATES: JobType[] = ["waiting", "active", "delayed", "prioritized", "failed", "completed"];
const SCRAPE_TIMEOUT_MS = 2000;

/**
 * Feeds the `holdfast_queue_jobs` gauge from the queues' job counts at scrape time, so /metrics
 * needs no timer and shows current numbers. While Redis is down the series are dropped rather
 * than left at stale values. Returns the unregistration.
 */
export function collectQueueDepth(queues: Queue[]): () => void {
  return onQueueDepthScrape(async () => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("queue counts timed out")), SCRAPE_TIMEOUT_MS);
    });
    try {
      const counts = await Promise.race([
        Promise.all(queues.map(async (q) => [q.name, await q.getJobCounts(...STATES)] as const)),
        timeout,
      ]);
      for (const [queue, byState] of counts)
        for (const [state, n] of Object.entries(byState)) queueDepth.set({ queue, state }, n);
    } catch {
      queueDepth.reset();
    } finally {
      clearTimeout(timer);
    }
  });
}
