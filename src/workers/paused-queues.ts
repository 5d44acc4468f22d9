import type { Queue } from "bullmq";
import { QUEUE_NAMES } from "./queues.ts";

/**
 * The queues whose pause stops expiry: a paused expire queue leaves holds pending past their
 * deadline, and a paused sweep queue removes the backstop that expires them anyway.
 */
export const EXPIRY_QUEUES: readonly string[] = [QUEUE_NAMES.expire, QUEUE_NAMES.sweep];

/** Each queue's name and whether it is paused (BullMQ's own flag, read from Redis). */
export async function queuePauses(queues: Queue[]): Promise<{ queue: string; paused: boolean }[]> {
  return Promise.all(
    queues.map(async (queue) => ({ queue: queue.name, paused: await queue.isPaused() })),
  );
}

/** The names of the paused queues among those that stop expiry. */
export async function pausedExpiryQueues(queues: Queue[]): Promise<string[]> {
  const pauses = await queuePauses(queues.filter((q) => EXPIRY_QUEUES.includes(q.name)));
  return pauses.filter((p) => p.paused).map((p) => p.queue);
}
