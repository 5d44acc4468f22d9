import type { ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { ADMIN, SERVICE } from "./app.ts";
import { START_TIMEOUT_MS, startChild, stopChild } from "./child-process.ts";
import { REDIS_URL } from "./urls.ts";
import { deleteKeysUnder, testPrefix } from "./workers.ts";

export interface ServeProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Everything it has written to stdout and stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `holdfast serve` as its own OS process on a free port. Unless `env` names the queue
 * prefix, the process gets one of its own, whose keys stop() deletes once it has exited. A
 * start that fails (timeout, exit) stops the process before rejecting.
 */
export async function spawnServe(
  databaseUrl: string,
  env: Record<string, string> = {},
  options: { timeoutMs?: number } = {},
): Promise<ServeProcess> {
  const ownPrefix = env.HOLDFAST_QUEUE_PREFIX === undefined ? testPrefix() : undefined;
  const { child, match, output } = await startChild(
    process.execPath,
    ["bin/holdfast.js", "serve"],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        REDIS_URL,
        PORT: "0",
        LOG_LEVEL: "info",
        HOLDFAST_ADMIN_TOKEN: ADMIN,
        HOLDFAST_SERVICE_TOKEN: SERVICE,
        HOLDFAST_QUEUE_PREFIX: ownPrefix,
        ...env,
      },
      ready: /"port":(\d+)/,
      timeoutMs: options.timeoutMs ?? START_TIMEOUT_MS,
      what: "serve",
    },
  );
  const port = Number(match[1]);
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    output,
    async stop(signal = "SIGTERM") {
      const code = await stopChild(child, signal, null);
      if (ownPrefix) {
        const redis = new Redis(REDIS_URL, { lazyConnect: true });
        await deleteKeysUnder(redis, ownPrefix).finally(() => redis.disconnect());
      }
      return code;
    },
  };
}
