import { fileURLToPath } from "node:url";
import { type BenchConfig, queuePrefix } from "../config.ts";
import { type Child, startChild } from "./children.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const RESULTS = fileURLToPath(new URL("../results", import.meta.url));
const CLI = fileURLToPath(new URL("../../bin/holdfast.js", import.meta.url));

export interface HoldfastEnv {
  databaseUrl: string;
  /** Names the queue prefix and the CPU profile. */
  scenario: string;
  extra?: Record<string, string> | undefined;
}

function environment(config: BenchConfig, env: HoldfastEnv): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: "production",
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: config.redisUrl,
    PORT: "0",
    LOG_LEVEL: "info",
    HOLDFAST_ADMIN_TOKEN: config.adminToken,
    HOLDFAST_SERVICE_TOKEN: config.serviceToken,
    HOLDFAST_QUEUE_PREFIX: queuePrefix(config, env.scenario),
    ...(config.holdfastPoolMax ? { HOLDFAST_DB_POOL_MAX: config.holdfastPoolMax } : {}),
    ...env.extra,
  };
}

/**
 * Node options of a holdfast process: with BENCH_PROFILE, CPU profiles written on exit to
 * results/<scenario>-<command>/, one per thread (tsx's loader runs in a thread of its own; a
 * fixed file name made its profile overwrite the main thread's).
 */
function nodeArgs(config: BenchConfig, command: string, scenario: string): string[] {
  if (!config.profile) return [CLI, command];
  return ["--cpu-prof", `--cpu-prof-dir=${RESULTS}/${scenario}-${command}`, CLI, command];
}

export interface RunningApi {
  baseUrl: string;
  child: Child;
}

/** `holdfast serve` on a free port, as its own process. */
export async function startServe(config: BenchConfig, env: HoldfastEnv): Promise<RunningApi> {
  const child = startChild(
    "holdfast serve",
    process.execPath,
    nodeArgs(config, "serve", env.scenario),
    {
      cwd: ROOT,
      env: environment(config, env),
    },
  );
  try {
    const match = await child.waitFor(/"port":(\d+)/);
    return { baseUrl: `http://127.0.0.1:${match[1]}`, child };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** `holdfast worker`, resolved once its workers are running. */
export async function startWorker(config: BenchConfig, env: HoldfastEnv): Promise<Child> {
  const child = startChild(
    "holdfast worker",
    process.execPath,
    nodeArgs(config, "worker", env.scenario),
    {
      cwd: ROOT,
      env: environment(config, env),
    },
  );
  try {
    await child.waitFor(/holdfast workers running/);
    return child;
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** Runs a one-shot CLI command (migrate, verify) to completion. */
export async function runCli(
  config: BenchConfig,
  command: "migrate" | "verify",
  databaseUrl: string,
): Promise<{ code: number | null; output: string }> {
  const child = startChild(`holdfast ${command}`, process.execPath, [CLI, command], {
    cwd: ROOT,
    // migrate and verify need no tokens, but production mode insists on valid ones.
    env: environment(config, {
      databaseUrl,
      scenario: "cli",
      extra: {
        HOLDFAST_ADMIN_TOKEN: "bench-cli-admin-token-0123456789",
        HOLDFAST_SERVICE_TOKEN: "bench-cli-service-token-0123456789",
      },
    }),
  });
  const code = await child.exited;
  return { code, output: child.output() };
}
