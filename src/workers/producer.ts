import { connectRedis, type RedisTarget } from "../process/connections.ts";
import { createHoldQueues, type HoldQueues } from "./queues.ts";

/** Bounds an enqueue while Redis is reachable but not answering. */
const PRODUCER_COMMAND_TIMEOUT_MS = 2000;

export interface Producer {
  queues: HoldQueues;
  close(): Promise<void>;
}

/**
 * The API side's queues, on their own connection that fails fast: no offline queue, one retry,
 * a command timeout. A purchase commits in Postgres first and enqueues after, so while Redis is
 * down the enqueue fails at once, the purchase still succeeds, and the sweep enqueues later.
 * Fails with one line naming the URL or the cluster's nodes if Redis is unreachable at start.
 */
export async function connectProducer(redis: RedisTarget, prefix: string): Promise<Producer> {
  const connection = await connectRedis(redis, {
    commandTimeout: PRODUCER_COMMAND_TIMEOUT_MS,
  });
  const queues = createHoldQueues(connection, { prefix, failFast: true });
  await Promise.all(queues.all.map((q) => q.waitUntilReady()));
  return {
    queues,
    close: async () => {
      await queues.close();
      connection.disconnect();
    },
  };
}
