import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { ADMIN, SERVICE } from "./app.ts";
import { REDIS_URL } from "./urls.ts";
import { deleteKeysUnder, testPrefix } from "./workers.ts";

export interface ServeProcess {
  child: ChildProcess;
  baseUrl: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `holdfast serve` as its own OS process on a free port. Unless `env` names the queue
 * prefix, the process gets one of its own, whose keys stop() deletes once it has exited.
 */
export async function spawnServe(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ServeProcess> {
  const ownPrefix = env.HOLDFAST_QUEUE_PREFIX === undefined ? testPrefix() : undefined;
  const child = spawn(process.execPath, ["bin/holdfast.js", "serve"], {
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
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 20_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"port":(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${output}`));
    });
  });
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    async stop(signal = "SIGTERM") {
      const code = await new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once("exit", (exitCode) => resolve(exitCode));
        child.kill(signal);
      });
      if (ownPrefix) {
        const redis = new Redis(REDIS_URL, { lazyConnect: true });
        await deleteKeysUnder(redis, ownPrefix).finally(() => redis.disconnect());
      }
      return code;
    },
  };
}
