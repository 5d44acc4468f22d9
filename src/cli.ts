import { Command } from "commander";
import { createDb } from "./db/client.ts";
import { ensureDatabase, runMigrations } from "./db/migrate.ts";
import { type Env, EnvError, parseEnv } from "./env.ts";
import { setEventsWritten } from "./events/append-events.ts";
import { seedDemo } from "./ledger/seed.ts";
import { formatReport, verifyLedger } from "./ledger/verify.ts";
import { createLogger, type Logger } from "./logger.ts";
import {
  checkPostgres,
  connectRedis,
  redact,
  redisEvictionWarning,
  redisTarget,
  StartupError,
} from "./process/connections.ts";
import type { RunningServer } from "./process/server.ts";
import type { Producer } from "./workers/producer.ts";
import type { RunningWorkers } from "./workers/worker.ts";

interface Context {
  env: Env;
  logger: Logger;
}

function boot(): Context {
  const { env, warnings } = parseEnv();
  const logger = createLogger(env.LOG_LEVEL);
  for (const warning of warnings) logger.warn(warning);
  if (!env.HOLDFAST_EVENTS) {
    setEventsWritten(false);
    logger.warn("HOLDFAST_EVENTS=off: no event is written; for measuring the outbox only");
  }
  return { env, logger };
}

async function migrate({ env, logger }: Context) {
  await checkPostgres(new URL("/postgres", env.DATABASE_URL).toString());
  if (await ensureDatabase(env.DATABASE_URL))
    logger.info(`created database ${redact(env.DATABASE_URL)}`);
  await runMigrations(env.DATABASE_URL);
  logger.info("migrations applied");
}

async function seed({ env, logger }: Context) {
  await checkPostgres(env.DATABASE_URL);
  const handle = createDb(env.DATABASE_URL, { max: 1 });
  try {
    const created = await seedDemo(handle.db);
    logger.info(created.length ? `seeded ${created.join(", ")}` : "demo data already present");
  } finally {
    await handle.close();
  }
}

/**
 * Runs the API, the workers, or both, until SIGTERM or SIGINT, then closes them in order: the
 * HTTP server (no new purchases), the workers (each finishes the job in hand), the queues,
 * Postgres, Redis.
 */
async function run(ctx: Context, parts: { api: boolean; workers: boolean }) {
  const { env, logger } = ctx;
  await checkPostgres(env.DATABASE_URL);
  const target = redisTarget(env);
  const redis = await connectRedis(target);
  const evicting = await redisEvictionWarning(redis);
  if (evicting) logger.warn(evicting);
  const handle = createDb(env.DATABASE_URL, {
    max: env.HOLDFAST_DB_POOL_MAX,
    statementTimeoutMs: env.HOLDFAST_STATEMENT_TIMEOUT_MS,
  });
  let producer: Producer | undefined;
  let server: RunningServer | undefined;
  let workers: RunningWorkers | undefined;
  let stopDepth: (() => void) | undefined;
  const close = async () => {
    await server?.close();
    await workers?.close();
    stopDepth?.();
    await producer?.close();
    await handle.close();
    redis.disconnect();
  };
  try {
    if (parts.api) {
      // Loaded here, so that migrate and verify do not pay for BullMQ and the dashboard.
      const [
        { connectProducer },
        { collectQueueDepth },
        { batchedScheduler, batchedUnscheduler },
        { startServer },
        ui,
        panel,
        { collectHoldGauges },
        { holdStats },
        { queuePauses },
      ] = await Promise.all([
        import("./workers/producer.ts"),
        import("./workers/collect-queue-depth.ts"),
        import("./workers/schedule-hold.ts"),
        import("./process/server.ts"),
        import("./http/dashboard.ts"),
        import("./http/admin/holds-panel.ts"),
        import("./metrics.ts"),
        import("./reservations/hold-stats.ts"),
        import("./workers/paused-queues.ts"),
      ]);
      producer = await connectProducer(target, env.HOLDFAST_QUEUE_PREFIX);
      const { queues } = producer;
      const stopDepthOnly = collectQueueDepth(queues.all);
      const stopHoldGauges = collectHoldGauges({
        stats: () => holdStats(handle.db),
        pauses: () => queuePauses(queues.all),
      });
      stopDepth = () => {
        stopDepthOnly();
        stopHoldGauges();
      };
      const fulfilment = env.FULFILMENT_URL !== undefined;
      server = await startServer(
        {
          db: handle.db,
          redis,
          env,
          logger,
          holdPlaced: batchedScheduler(queues, { fulfilment }),
          holdResolved: batchedUnscheduler(queues),
          queues: queues.all,
        },
        [
          ui.dashboard(queues.all, { opsToken: env.HOLDFAST_OPS_TOKEN }),
          panel.holdsPanel(queues.all, { fulfilment }),
        ],
      );
    }
    if (parts.workers) {
      const { startWorkers } = await import("./workers/worker.ts");
      workers = await startWorkers({ db: handle.db, env, logger, redis: target });
    }
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
  onShutdown(logger, close);
}

async function verify({ env }: Context) {
  await checkPostgres(env.DATABASE_URL);
  const handle = createDb(env.DATABASE_URL, { max: 1 });
  try {
    const report = await verifyLedger(handle.db, {
      overdueGraceMs: env.HOLDFAST_SWEEP_INTERVAL_MS + 60_000,
    });
    console.log(formatReport(report));
    process.exitCode = report.ok ? 0 : 1;
  } finally {
    await handle.close();
  }
}

function onShutdown(logger: Logger, close: () => Promise<void>) {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, "shutting down");
    close()
      .then(() => process.exit(0))
      .catch((err) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

function action(run: (ctx: Context) => Promise<void>) {
  return async () => {
    try {
      await run(boot());
    } catch (error) {
      if (error instanceof EnvError || error instanceof StartupError) {
        console.error(`holdfast: ${error.message}`);
        process.exit(1);
      }
      throw error;
    }
  };
}

const program = new Command("holdfast")
  .description("holdfast: an escrow ledger for in-app coins")
  .showHelpAfterError();

program
  .command("migrate")
  .description("create the database if needed and apply migrations")
  .action(action(migrate));
program
  .command("seed")
  .description("demo data: alice (50), bob (500), promotion DOUBLE; idempotent")
  .action(action(seed));
program
  .command("serve")
  .description("run the HTTP API")
  .action(action((ctx) => run(ctx, { api: true, workers: false })));
program
  .command("worker")
  .description("run the BullMQ workers: expire, fulfil (with FULFILMENT_URL) and sweep")
  .action(action((ctx) => run(ctx, { api: false, workers: true })));
program
  .command("start")
  .description("migrate, seed the demo data (not in production), then run the API and workers")
  .action(
    action(async (ctx) => {
      await migrate(ctx);
      // Demo coins have no place in a production ledger; `holdfast seed` can still add them.
      if (ctx.env.NODE_ENV !== "production") await seed(ctx);
      await run(ctx, { api: true, workers: true });
    }),
  );
program
  .command("verify")
  .description("recompute every balance and check the ledger invariants; exit 1 on a violation")
  .action(action(verify));

await program.parseAsync();
