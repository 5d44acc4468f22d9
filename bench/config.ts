import { randomBytes } from "node:crypto";

/** What one bench run does; everything comes from BENCH_* variables, with defaults for a full run. */
export interface BenchConfig {
  /** Seconds of load per throughput scenario. */
  durationS: number;
  /** Seconds of load per balance-read scenario. */
  readDurationS: number;
  /** Seconds of discarded load before each measurement (JIT, pools, caches). */
  warmupS: number;
  connections: number;
  pgbenchClients: number;
  pgbenchThreads: number;
  spreadAccounts: number;
  settleHolds: number;
  historyEntries: { small: number; large: number };
  /**
   * Scenario keys to run (BENCH_ONLY=settlements,holdsHot; a group name such as `citus` stands
   * for its keys); undefined: all of them.
   */
  only: Set<string> | undefined;
  /** Write a CPU profile of every holdfast process to bench/results/ (BENCH_PROFILE=1). */
  profile: boolean;
  /** HOLDFAST_DB_POOL_MAX for the processes the bench starts; unset: holdfast's default. */
  holdfastPoolMax: string | undefined;
  /** A running holdfast to target instead of starting one. */
  url: string | undefined;
  /** With `url`: that instance's database, for set-based seeding, big histories and verify. */
  targetDatabaseUrl: string | undefined;
  /** The Postgres server that gets the bench (and pgbench) databases: a maintenance database on it. */
  adminUrl: string;
  redisUrl: string;
  /** The Citus coordinator (a maintenance database on it), for the Citus scenarios. */
  citusUrl: string;
  /** The Citus workers (maintenance databases), registered in each Citus bench database. */
  citusWorkerUrls: string[];
  serviceToken: string;
  adminToken: string;
  /** Short and unique: names the run's databases, account ids and queue prefixes. */
  runId: string;
  unix: number;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`invalid environment variable ${name}: expected a positive number, got ${raw}`);
  }
  return value;
}

const integer = (name: string, fallback: number) => Math.round(positive(name, fallback));

/** The shard counts the Citus scenarios compare: Citus's default and a few large shards. */
export const CITUS_SHARD_COUNTS = [32, 4] as const;

/**
 * Hold placements on plain Postgres and on Citus with each shard count, each on a fresh
 * database: the keys of BENCH_ONLY's `citus` group.
 */
export const CITUS_SCENARIOS = [
  "holdsSpreadPlain",
  "holdsSpreadCitus32",
  "holdsSpreadCitus4",
  "holdsHotPlain",
  "holdsHotCitus32",
  "holdsHotCitus4",
] as const;

/** BENCH_ONLY names that stand for several scenario keys. */
const GROUPS: Record<string, readonly string[]> = { citus: CITUS_SCENARIOS };

const words = (list: string, separator: string | RegExp) =>
  list
    .split(separator)
    .map((word) => word.trim())
    .filter(Boolean);

const pgUrl = (port: string) => `postgres://postgres@127.0.0.1:${port}/postgres`;

export function loadConfig(): BenchConfig {
  const durationS = integer("BENCH_DURATION", 10);
  const url = process.env.BENCH_URL?.replace(/\/+$/, "") || undefined;
  return {
    durationS,
    readDurationS: integer("BENCH_READ_DURATION", Math.min(5, durationS)),
    warmupS: integer("BENCH_WARMUP", 1),
    connections: integer("BENCH_CONNECTIONS", 64),
    pgbenchClients: integer("BENCH_PGBENCH_CLIENTS", 16),
    pgbenchThreads: integer("BENCH_PGBENCH_THREADS", 2),
    spreadAccounts: integer("BENCH_ACCOUNTS", 1000),
    settleHolds: integer("BENCH_SETTLE_HOLDS", 20_000),
    historyEntries: {
      small: integer("BENCH_HISTORY_SMALL", 1000),
      large: integer("BENCH_HISTORY_LARGE", 1_000_000),
    },
    only: process.env.BENCH_ONLY
      ? new Set(
          process.env.BENCH_ONLY.split(",")
            .map((name) => name.trim())
            .flatMap((name) => GROUPS[name] ?? [name]),
        )
      : undefined,
    profile: Boolean(process.env.BENCH_PROFILE && process.env.BENCH_PROFILE !== "0"),
    holdfastPoolMax: process.env.HOLDFAST_DB_POOL_MAX || undefined,
    url,
    targetDatabaseUrl: process.env.BENCH_DATABASE_URL || undefined,
    adminUrl: process.env.BENCH_PG_URL || "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379",
    // The ports of ../shared/citus/cluster.sh, which reads the same two variables.
    citusUrl: process.env.BENCH_CITUS_URL || pgUrl(process.env.CITUS_COORDINATOR_PORT || "5499"),
    citusWorkerUrls: process.env.BENCH_CITUS_WORKER_URLS
      ? words(process.env.BENCH_CITUS_WORKER_URLS, ",")
      : words(process.env.CITUS_WORKER_PORTS || "5501 5502", /\s+/).map((port) => pgUrl(port)),
    serviceToken:
      process.env.BENCH_SERVICE_TOKEN ||
      (url ? "dev-service-token" : "bench-service-token-0123456789"),
    adminToken:
      process.env.BENCH_ADMIN_TOKEN || (url ? "dev-admin-token" : "bench-admin-token-0123456789"),
    runId: randomBytes(4).toString("hex"),
    unix: Math.floor(Date.now() / 1000),
  };
}

/** BullMQ key prefix of one scenario: hash-tagged like holdfast's own, unique to the run. */
export const queuePrefix = (config: BenchConfig, scenario: string) =>
  `{holdfast-bench-${config.runId}-${scenario}}`;

/** Matches every key under the run's queue prefixes, for the clean-up. */
export const queueKeys = (config: BenchConfig) => `{holdfast-bench-${config.runId}-*`;

/** Account ids of a run: unique per run, so a shared target never mixes runs. */
export function accountIds(config: BenchConfig) {
  const p = `b${config.runId}`;
  return {
    spreadPrefix: `${p}-s-`,
    spread: (i: number) => `${p}-s-${i}`,
    hot: `${p}-hot`,
    historySmall: `${p}-h-small`,
    historyLarge: `${p}-h-large`,
  };
}
