import { Command } from "commander";
import { createDb } from "./db/client.ts";
import { ensureDatabase, runMigrations } from "./db/migrate.ts";
import { type Env, EnvError, parseEnv } from "./env.ts";
import { seedDemo } from "./ledger/seed.ts";
import { formatReport, verifyLedger } from "./ledger/verify.ts";
import { createLogger, type Logger } from "./logger.ts";
import { checkPostgres, connectRedis, redact, StartupError } from "./process/connections.ts";
import { startServer } from "./process/server.ts";

interface Context {
  env: Env;
  logger: Logger;
}

function boot(): Context {
  const { env, warnings } = parseEnv();
  const logger = createLogger(env.LOG_LEVEL);
  for (const warning of warnings) logger.warn(warning);
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
  const handle = createDb(env.DATABASE_URL, { max: 1 });
  try {
    const created = await seedDemo(handle.db);
    logger.info(created.length ? `seeded ${created.join(", ")}` : "demo data already present");
  } finally {
    await handle.close();
  }
}

/** Runs the API (and, later, the workers) until SIGTERM or SIGINT, then closes them in order. */
async function serve(ctx: Context) {
  const { env, logger } = ctx;
  await checkPostgres(env.DATABASE_URL);
  const redis = await connectRedis(env.REDIS_URL);
  const handle = createDb(env.DATABASE_URL, { max: env.HOLDFAST_DB_POOL_MAX });
  const server = await startServer({ db: handle.db, redis, env, logger });
  onShutdown(logger, async () => {
    await server.close();
    await handle.close();
    redis.disconnect();
  });
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
  .description("demo data: alice (50), bob (500); idempotent")
  .action(action(seed));
program.command("serve").description("run the HTTP API").action(action(serve));
program
  .command("start")
  .description("migrate, seed the demo data, then run the API and workers in one process")
  .action(
    action(async (ctx) => {
      await migrate(ctx);
      await seed(ctx);
      await serve(ctx);
    }),
  );
program
  .command("verify")
  .description("recompute every balance and check the ledger invariants; exit 1 on a violation")
  .action(action(verify));

await program.parseAsync();
