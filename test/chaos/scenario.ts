import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { expect } from "vitest";
import { ADMIN, SERVICE } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder } from "../helpers/workers.ts";
import { checkFinalState, type FinalTotals, waitForHoldsResolved } from "./checks.ts";
import { Cluster } from "./cluster.ts";
import type { ChaosConfig, ChaosTarget } from "./config.ts";
import { Faults, faultKinds, planFaults } from "./faults.ts";
import { type FulfilmentService, startFulfilmentService } from "./fulfilment.ts";
import { ChaosHttp, newHttpStats } from "./http.ts";
import { type KeyedOp, Model, type PromotionSpec } from "./model.ts";
import { Rng } from "./random.ts";
import { type Subscriber, startSubscriber, subscriberProblems } from "./subscriber.ts";
import { formatSummary } from "./summary.ts";
import { absorb, runClient, type Workload } from "./workload.ts";

const MAX_EXPIRY_S = 10;

const PROMOTIONS: PromotionSpec[] = [
  { code: "CHAOS-X2", multiplier: 2, maxRedemptions: null },
  { code: "CHAOS-X3-CAP3", multiplier: 3, maxRedemptions: 3 },
  { code: "CHAOS-X2-CAP5", multiplier: 2, maxRedemptions: 5 },
];

/**
 * The chaos run (issue 5): API and worker processes under a seeded random workload while
 * workers and APIs are SIGKILLed, the queue's Redis keys vanish and a database server restarts
 * (the single Postgres on the plain target; a Citus worker node on the Citus target, issue 13);
 * then the ledger must match what the clients were told, to the coin. test/chaos/chaos.test.ts
 * runs it on plain Postgres, test/scale/chaos.test.ts on the local Citus cluster.
 */
export async function runChaos(target: ChaosTarget, config: ChaosConfig): Promise<void> {
  const { seed } = config;
  const began = Date.now();
  const where = target === "citus" ? " citus" : "";
  const log = (line: string) =>
    console.log(
      `[chaos${where} seed ${seed} +${((Date.now() - began) / 1000).toFixed(1)} s] ${line}`,
    );
  log(
    `CHAOS_SEED=${seed} CHAOS_DURATION_S=${config.durationMs / 1000} clients ${config.clients}, ` +
      `${config.apis} APIs, ${config.workers} workers, ${config.accounts} accounts`,
  );
  // createTestDatabase makes a Citus database only in a project that sets HOLDFAST_TEST_CITUS.
  if ((target === "citus") !== (process.env.HOLDFAST_TEST_CITUS === "1"))
    throw new Error(
      `a ${target} chaos run with HOLDFAST_TEST_CITUS=${process.env.HOLDFAST_TEST_CITUS ?? ""}: ` +
        "run it in its project (npm run test:chaos, or test:scale for Citus)",
    );
  const rng = new Rng(seed);
  const problems: string[] = [];
  const defects: string[] = [];
  const model = new Model();
  const stats = newHttpStats();
  const prefix = `{hf-chaos-${randomUUID()}}`;
  const redis = new Redis(REDIS_URL);
  let db: TestDatabase | undefined;
  let fulfilment: FulfilmentService | undefined;
  let subscriber: Subscriber | undefined;
  let cluster: Cluster | undefined;
  let faults: Faults | undefined;
  let totals: FinalTotals | undefined;
  let drainMs: number | undefined;

  try {
    db = await createTestDatabase({ max: 4 });
    fulfilment = await startFulfilmentService(seed, randomBytes(16).toString("hex"));
    subscriber = await startSubscriber(seed);
    cluster = new Cluster(db.url, {
      REDIS_URL,
      HOLDFAST_QUEUE_PREFIX: prefix,
      HOLDFAST_SWEEP_INTERVAL_MS: String(config.sweepIntervalMs),
      HOLDFAST_DB_POOL_MAX: "6",
      FULFILMENT_URL: fulfilment.url,
      FULFILMENT_SECRET: fulfilment.secret,
      HOLDFAST_ADMIN_TOKEN: ADMIN,
      HOLDFAST_SERVICE_TOKEN: SERVICE,
      LOG_LEVEL: "info",
    });
    const c = cluster;
    await Promise.all([
      ...Array.from({ length: config.apis }, () => c.startApi()),
      ...Array.from({ length: config.workers }, () => c.startWorker()),
    ]);
    log(
      `started ${c.members.map((m) => m.name).join(", ")} (database ${db.name}, prefix ${prefix})`,
    );

    const http = new ChaosHttp(c, stats, defects, log);
    const accounts = Array.from({ length: config.accounts }, (_, i) => `chaos-${i}`);
    const w: Workload = {
      seed,
      http,
      model,
      accounts,
      promotions: PROMOTIONS,
      opRetryMs: config.opRetryMs,
    };
    const setupRng = rng.fork("setup");
    /** A credit before the run, recorded in the model like the clients' own. */
    const setupCredit = async (id: string, key: string, amount: number, reason: string) => {
      const request = {
        method: "POST" as const,
        path: `/v1/accounts/${id}/credits`,
        token: ADMIN,
        key,
        body: { amount, reason, metadata: { chaosKey: key } },
      };
      const op: KeyedOp = { kind: "credit", key, client: -1, accountId: id, request };
      model.ops.push(op);
      const answer = await http.send(request, setupRng.fork(key), 30_000);
      if (answer?.status !== 201)
        throw new Error(`crediting ${id} (${key}): ${answer?.status} ${answer?.text}`);
      op.answer = answer;
      absorb(w, op, `setup ${key}`);
    };
    // A webhook subscriber from the start: it must receive every event of the run.
    const endpoint = await http.send(
      {
        method: "POST",
        path: "/v1/webhook-endpoints",
        token: ADMIN,
        body: { url: subscriber.url },
        key: `endpoint-${seed}`,
      },
      setupRng,
      30_000,
    );
    if (endpoint?.status !== 201)
      throw new Error(`creating the webhook endpoint: ${endpoint?.status} ${endpoint?.text}`);
    subscriber.secret = endpoint.json.secret;
    for (const p of PROMOTIONS) {
      const a = await http.send(
        {
          method: "POST",
          path: "/v1/promotions",
          token: ADMIN,
          body: p,
          key: `promo-${seed}-${p.code}`,
        },
        setupRng,
        30_000,
      );
      if (a?.status !== 201) throw new Error(`creating ${p.code}: ${a?.status} ${a?.text}`);
    }
    await Promise.all(
      accounts.map(async (id) => {
        const created = await http.send(
          {
            method: "POST",
            path: "/v1/accounts",
            token: SERVICE,
            body: { id },
            key: `open-${seed}-${id}`,
          },
          setupRng.fork(id),
          30_000,
        );
        if (created?.status !== 201)
          throw new Error(`opening ${id}: ${created?.status} ${created?.text}`);
        await setupCredit(id, `init-${seed}-${id}`, setupRng.int(300, 1500), "chaos funding");
      }),
    );
    await Promise.all(
      accounts.map(async (id) => {
        for (let i = 0; i < config.historyCredits; i++)
          await setupCredit(id, `history-${seed}-${id}-${i}`, 1, "chaos history");
      }),
    );
    log(
      `opened and funded ${accounts.length} accounts with ${config.historyCredits + 1} entries each, created ${PROMOTIONS.length} promotions`,
    );

    // The run: clients and faults together.
    const plan = planFaults(rng.fork("faults"), config.durationMs, faultKinds(target));
    log(
      `fault plan: ${plan.map((f) => `${f.kind} at +${(f.atMs / 1000).toFixed(1)} s`).join(", ")}`,
    );
    faults = new Faults(
      {
        cluster: c,
        redis,
        prefix,
        accounts,
        db: db.db,
        fulfilmentRequests: () => fulfilment!.stats.requests,
        defects,
        log,
      },
      rng.fork("fault-choices"),
    );
    const runStart = Date.now();
    // The clients go on until the last fault is over: each fault is checked for progress
    // afterwards, which needs a workload.
    let faultsOver = false;
    const running = () => Date.now() < runStart + config.durationMs || !faultsOver;
    const clientsDone = Promise.all(
      Array.from({ length: config.clients }, (_, i) =>
        runClient(w, i, rng.fork(`client-${i}`), running),
      ),
    );
    await Promise.all([
      clientsDone,
      faults.run(plan, runStart).finally(() => {
        faultsOver = true;
      }),
    ]);
    log(`workload over after ${((Date.now() - runStart) / 1000).toFixed(1)} s`);

    // The drain: every keyed request gets its definite answer, every hold resolves.
    const drainStart = Date.now();
    const drainRng = rng.fork("drain");
    const undecided = model.ops.filter((o) => !o.answer);
    for (const op of undecided) {
      const answer = await http.send(op.request, drainRng, 60_000);
      if (answer) {
        op.answer = answer;
        absorb(w, op, `drain ${op.key}`);
      }
    }
    if (undecided.length > 0)
      log(`re-drove ${undecided.length} request(s) without a definite answer`);
    const stuck = await waitForHoldsResolved(
      db.db,
      (MAX_EXPIRY_S + 5 * (config.sweepIntervalMs / 1000) + 20) * 1000,
    );
    problems.push(...stuck);
    drainMs = Date.now() - drainStart;
    log(`drained in ${(drainMs / 1000).toFixed(1)} s`);

    const final = await checkFinalState({
      db: db.db,
      http,
      rng: rng.fork("checks"),
      model,
      accounts,
      promotions: PROMOTIONS,
      fulfilment,
    });
    totals = final.totals;
    problems.push(...final.problems);

    // Every event of the run reaches the subscriber (at least once, signed, in order).
    const events = await db.db.execute<{ id: string; account_id: string; sequence: number }>(
      sql`SELECT id, account_id, sequence FROM events`,
    );
    const sub = subscriber;
    const webhooksBy = Date.now() + 90_000;
    while (Date.now() < webhooksBy && events.some((e) => !sub.received.has(e.id)))
      await new Promise((r) => setTimeout(r, 250));
    problems.push(...subscriberProblems(sub, events));
    log(
      `webhooks: ${sub.received.size} of ${events.length} events received, ${sub.deliveries} deliveries`,
    );

    // Workers finish the job in hand on SIGTERM; with the webhook gone none waits on it.
    await fulfilment.close();
    problems.push(...(await c.stopAll()));
    const verify = spawnSync(process.execPath, ["bin/holdfast.js", "verify"], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        HOLDFAST_SWEEP_INTERVAL_MS: String(config.sweepIntervalMs),
        LOG_LEVEL: "silent",
      },
      encoding: "utf8",
    });
    if (verify.status !== 0)
      problems.push(`holdfast verify exited ${verify.status}:\n${verify.stdout}${verify.stderr}`);
    await expectLedgerConsistent(db.db).catch((error: Error) =>
      problems.push(`expectLedgerConsistent: ${error.message}`),
    );
  } catch (error) {
    problems.push(`the run failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    cluster?.killAll();
    await faults?.close();
    await fulfilment?.close().catch(() => {});
    await subscriber?.close().catch(() => {});
    await deleteKeysUnder(redis, prefix).catch(() => {});
    redis.disconnect();
  }

  problems.push(...model.violations, ...defects);
  // An API must answer, 503 at worst, while a database server restarts; hanging is not one.
  for (const t of stats.timeouts) problems.push(`no answer within 20 s: ${t}`);
  if (cluster) {
    problems.push(...cluster.unexpectedExits);
    for (const e of cluster.errors)
      if (e.member.startsWith("api") && e.msg === "unhandled error")
        problems.push(`${e.member} logged an unhandled error: ${e.line.slice(0, 1000)}`);
  }
  if (fulfilment) problems.push(...fulfilment.problems);
  if (cluster && fulfilment && faults) {
    console.log(
      formatSummary({
        seed,
        target,
        durationMs: config.durationMs,
        wallMs: Date.now() - began,
        clients: config.clients,
        model,
        http: stats,
        faults: faults.records,
        fulfilment: fulfilment.stats,
        cluster,
        totals,
        drainMs,
        problems,
      }),
    );
  }
  if (problems.length === 0) await db?.drop();
  else if (db) {
    await db.close().catch(() => {});
    log(`kept database ${db.name} for inspection`);
  }
  expect(
    problems,
    `chaos run failed; replay with CHAOS_SEED=${seed} CHAOS_DURATION_S=${config.durationMs / 1000}`,
  ).toEqual([]);
}
