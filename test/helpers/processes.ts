import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { ADMIN, SERVICE } from "./app.ts";
import { REDIS_URL } from "./urls.ts";

export interface ServeProcess {
  child: ChildProcess;
  baseUrl: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `holdfast serve` as its own OS process on a free port. */
export async function spawnServe(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["bin/holdfast.js", "serve"], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      PORT: "0",
      LOG_LEVEL: "info",
      HOLDFAST_ADMIN_TOKEN: ADMIN,
      HOLDFAST_SERVICE_TOKEN: SERVICE,
      HOLDFAST_QUEUE_PREFIX: `{hf-test-${randomUUID()}}`,
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
    stop: (signal = "SIGTERM") =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code));
        child.kill(signal);
      }),
  };
}
