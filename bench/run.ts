// npm run bench: the benchmark harness (issue 6). Starts its own holdfast against a fresh
// database, or targets BENCH_URL; prints a table and writes bench/results/latest.json.
// Figures only: nothing here asserts on timings.
import { fileURLToPath } from "node:url";
import { accountIds, type BenchConfig, loadConfig, queueKeys } from "./config.ts";
import { stopAll } from "./lib/children.ts";
import { citusUnavailable, dropStaleCitusDatabases } from "./lib/citus.ts";
import { type BenchContext, log } from "./lib/context.ts";
import {
  benchDatabaseName,
  createMigrated,
  dropDatabase,
  dropStaleDatabases,
  serverInfo,
} from "./lib/database.ts";
import { machineInfo } from "./lib/machine.ts";
import { removeKeys } from "./lib/redis.ts";
import { formatReport, type Outcome, type Runs, reportJson } from "./lib/report.ts";
import { writeResults } from "./lib/results.ts";
import { ownTarget, prepareAccounts, quiesce, runningTarget, type Target } from "./lib/target.ts";
import { type VerifyOutcome, verifyDatabase } from "./lib/verify.ts";
import { balanceReads } from "./scenarios/balance-reads.ts";
import { ceiling } from "./scenarios/ceiling.ts";
import { type Backend, dropLiveDatabases, placementsOn } from "./scenarios/citus-placements.ts";
import { holdPlacements, type Spread } from "./scenarios/hold-placements.ts";
import { httpLimit } from "./scenarios/http-limit.ts";
import { outboxCost } from "./scenarios/outbox-cost.ts";
import { settlements } from "./scenarios/settlements.ts";

const RESULTS = fileURLToPath(new URL("./results/latest.json", import.meta.url));
/** Where a BENCH_ONLY run writes, so that it never replaces the full run's figures. */
const PARTIAL = fileURLToPath(new URL("./results/partial.json", import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
/** Children first (they hold connections to the databases), then the rest, newest first. */
const cleanup = () =>
  (cleaning ??= (async () => {
    await stopAll();
    for (const step of cleanups.reverse()) {
      await step().catch((error: unknown) => log(`cleanup: ${(error as Error).message}`));
    }
  })());

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping child processes and dropping the bench databases`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function attempt<T>(name: string, run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { status: "ok", result: await run() };
  } catch (error) {
    log(`${name} failed: ${(error as Error).stack ?? error}`);
    return { status: "failed", reason: (error as Error).message.split("\n")[0]! };
  }
}

const skipped = (reason: string): Outcome<never> => ({ status: "skipped", reason });

async function prepareTarget(config: BenchConfig): Promise<Target> {
  if (config.url) return runningTarget(config, config.url);
  const name = benchDatabaseName(config);
  cleanups.push(() => dropDatabase(config, name));
  log(`creating and migrating ${name}`);
  return ownTarget(config, await createMigrated(config, name));
}

async function seed(ctx: BenchContext): Promise<void> {
  const { config, target, ids } = ctx;
  const spread = Array.from({ length: config.spreadAccounts }, (_, i) => ids.spread(i + 1));
  log(`funding ${spread.length} + 1 accounts with 10^12 coins each`);
  await prepareAccounts(config, target, { ids: [...spread, ids.hot], credits: 1, amount: 1e12 });
  const { small, large } = config.historyEntries;
  log(`writing a history of ${small} entries`);
  await prepareAccounts(config, target, { ids: [ids.historySmall], credits: small, amount: 1 });
  if (target.databaseUrl && (!config.only || config.only.has("readsLarge"))) {
    log(`writing a history of ${large} entries`);
    await prepareAccounts(config, target, { ids: [ids.historyLarge], credits: large, amount: 1 });
  }
  await quiesce(target);
}

async function main(): Promise<void> {
  const config = loadConfig();
  const stale = await dropStaleDatabases(config);
  if (stale.length) log(`dropped stale bench databases: ${stale.join(", ")}`);
  const target = await prepareTarget(config);
  cleanups.push(() => removeKeys(config.redisUrl, queueKeys(config)));
  cleanups.push(dropLiveDatabases);
  const ctx: BenchContext = { config, target, ids: accountIds(config) };
  const machine = machineInfo(await serverInfo(target.databaseUrl ?? config.adminUrl));
  await seed(ctx);

  const notes: string[] = [];
  if (!target.own) {
    notes.push("BENCH_URL: the running instance is not restarted between scenarios");
    notes.push("the ceiling is measured on the Postgres server of BENCH_PG_URL");
  }
  const run = async <K extends keyof Runs>(
    key: K,
    scenario: () => Runs[K] | Promise<Runs[K]>,
  ): Promise<Runs[K]> =>
    config.only && !config.only.has(key) ? skipped("not in BENCH_ONLY") : scenario();
  // Whether the Citus cluster is up, asked once, when the first Citus scenario runs.
  let citusDown: Promise<string | undefined> | undefined;
  const citusReady = () =>
    (citusDown ??= citusUnavailable(config).then(async (reason) => {
      if (reason) log(`Citus scenarios skipped: ${reason}`);
      else {
        const stale = await dropStaleCitusDatabases(config);
        if (stale.length) log(`dropped stale Citus bench databases: ${stale.join(", ")}`);
      }
      return reason;
    }));
  const placedOn = async (spread: Spread, backend: Backend) => {
    if (!target.own) return skipped("needs a holdfast the bench starts (BENCH_URL is set)");
    const down = await citusReady();
    if (down) return skipped(down);
    const where = backend.kind === "citus" ? `Citus ${backend.shards} shards` : "plain";
    return attempt(`holds ${spread} on ${where}`, () => placementsOn(ctx, spread, backend));
  };
  const runs: Runs = {
    // Settlements run first: the worker's sweep would otherwise walk the tens of thousands of
    // pending holds that the placement scenarios leave behind.
    settlements: await run("settlements", () =>
      target.own
        ? attempt("settlements", () => settlements(ctx))
        : skipped("needs a worker the bench starts (BENCH_URL is set)"),
    ),
    holdsSpread: await run("holdsSpread", () =>
      attempt("holds spread", () => holdPlacements(ctx, "spread")),
    ),
    holdsHot: await run("holdsHot", () => attempt("holds hot", () => holdPlacements(ctx, "hot"))),
    // The same spread load with the micro-batcher off: what batching buys, in one run.
    holdsSpreadUnbatched: await run("holdsSpreadUnbatched", () =>
      target.own
        ? attempt("holds spread unbatched", () =>
            holdPlacements(ctx, "spread", {
              name: "batching off",
              env: { HOLDFAST_BATCH_WINDOW_MS: "0" },
            }),
          )
        : skipped("needs a holdfast the bench starts (BENCH_URL is set)"),
    ),
    // The outbox's cost: the same spread load with events and without, on fresh databases.
    holdsEventsOn: await run("holdsEventsOn", () =>
      target.own
        ? attempt("holds events on", () => outboxCost(ctx, "on"))
        : skipped("needs a holdfast the bench starts (BENCH_URL is set)"),
    ),
    holdsEventsOff: await run("holdsEventsOff", () =>
      target.own
        ? attempt("holds events off", () => outboxCost(ctx, "off"))
        : skipped("needs a holdfast the bench starts (BENCH_URL is set)"),
    ),
    // Plain Postgres vs Citus with 32 (Citus's default) and 4 shards, each on a fresh database.
    holdsSpreadPlain: await run("holdsSpreadPlain", () => placedOn("spread", { kind: "plain" })),
    holdsSpreadCitus32: await run("holdsSpreadCitus32", () =>
      placedOn("spread", { kind: "citus", shards: 32 }),
    ),
    holdsSpreadCitus4: await run("holdsSpreadCitus4", () =>
      placedOn("spread", { kind: "citus", shards: 4 }),
    ),
    holdsHotPlain: await run("holdsHotPlain", () => placedOn("hot", { kind: "plain" })),
    holdsHotCitus32: await run("holdsHotCitus32", () =>
      placedOn("hot", { kind: "citus", shards: 32 }),
    ),
    holdsHotCitus4: await run("holdsHotCitus4", () =>
      placedOn("hot", { kind: "citus", shards: 4 }),
    ),
    ceilingSpread: await run("ceilingSpread", () =>
      attempt("ceiling spread", () => ceiling(ctx, "spread")),
    ),
    ceilingHot: await run("ceilingHot", () => attempt("ceiling hot", () => ceiling(ctx, "hot"))),
    httpLimit: await run("httpLimit", () => attempt("HTTP limit", () => httpLimit(ctx))),
    readsSmall: await run("readsSmall", () =>
      attempt("reads small", () =>
        balanceReads(ctx, ctx.ids.historySmall, config.historyEntries.small),
      ),
    ),
    readsLarge: await run("readsLarge", () =>
      target.databaseUrl
        ? attempt("reads large", () =>
            balanceReads(ctx, ctx.ids.historyLarge, config.historyEntries.large),
          )
        : skipped("a long history needs BENCH_DATABASE_URL"),
    ),
  };

  let verify: VerifyOutcome | undefined;
  if (target.databaseUrl) {
    log("holdfast verify");
    verify = await verifyDatabase(config, target.databaseUrl);
  }

  const report = { machine, config, runs, verify, notes };
  console.log(`\n${formatReport(report)}`);
  const results = config.only ? PARTIAL : RESULTS;
  await writeResults(results, reportJson(report));
  log(`wrote ${results}`);
  if (verify && !verify.ok) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  log(`bench failed: ${(error as Error).stack ?? error}`);
} finally {
  await cleanup();
}
