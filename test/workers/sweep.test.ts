import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { getHold } from "../../src/reservations/hold.ts";
import { SWEEP_SCHEDULER_ID } from "../../src/workers/keep-sweep-scheduled.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { createHoldQueues, expireJobId, fulfilJobId } from "../../src/workers/queues.ts";
import { scheduleHold, scheduleMissing } from "../../src/workers/schedule-hold.ts";
import { sweepHolds } from "../../src/workers/sweep-holds.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import {
  deleteKeysUnder,
  type FulfilmentStub,
  startFulfilmentStub,
  testPrefix,
  waitFor,
  workerEnv,
} from "../helpers/workers.ts";

const FLUSH_DB = 9;
const FLUSH_LOCK = "holdfast-test:flushdb-9-lock";

let db: TestDatabase;
let stub: FulfilmentStub;
/** Holds whose fulfilment the stub accepts; every other request gets a 503. */
const accepted = new Set<string>();

beforeAll(async () => {
  db = await createTestDatabase();
  stub = await startFulfilmentStub((req) =>
    accepted.has(req.json?.holdId) ? { status: 200 } : { status: 503 },
  );
});

afterAll(async () => {
  await stub?.close();
  await expectLedgerConsistent(db.db);
  await db.drop();
});

const dbUrl = (n: number) => {
  const u = new URL(REDIS_URL);
  u.pathname = `/${n}`;
  return u.toString();
};

/** API (in-process) and workers on one Redis database and prefix, with a fast sweep. */
async function startStack(redisUrl: string) {
  const env = workerEnv({ FULFILMENT_URL: stub.url, HOLDFAST_SWEEP_INTERVAL_MS: 300 });
  const producer: Producer = await connectProducer(redisUrl, env.HOLDFAST_QUEUE_PREFIX);
  // The first fulfil retry waits 5 s, so only a job the sweep recreates can settle in time.
  const app: TestApp = await createTestApp({
    db,
    holdPlaced: (hold) =>
      scheduleHold(producer.queues, hold, { fulfilment: true, retryBaseMs: 5000 }),
  });
  const workers: RunningWorkers = await startWorkers({
    db: db.db,
    env,
    logger: createLogger("silent"),
    redis: redisUrl,
    tuning: { retryBaseMs: 50 },
  });
  return {
    env,
    producer,
    app,
    workers,
    purchase: async (accountId: string, expiresInSeconds: number) => {
      await fundedAccount(db.db, accountId, 50);
      const r = await app.call("POST", "/v1/purchases", {
        token: SERVICE,
        key: randomUUID(),
        body: { accountId, amount: 20, expiresInSeconds },
      });
      expect(r.status).toBe(201);
      return r.json.hold.id as string;
    },
    close: async () => {
      await workers.close();
      await producer.close();
      await app.close();
    },
  };
}

const statusOf = async (holdId: string) => (await getHold(db.db, holdId)).status;

/**
 * Holds pending, jobs in Redis, then the jobs and the sweep's scheduler vanish: the worker
 * recreates the scheduler, the sweep recreates the jobs, and the holds still resolve.
 */
async function lostJobsScenario(
  stack: Awaited<ReturnType<typeof startStack>>,
  loseEverything: () => Promise<void>,
  tag: string,
) {
  const { queues } = stack.producer;
  const toSettle = await stack.purchase(`${tag}-settle`, 60);
  const toExpire = await stack.purchase(`${tag}-expire`, 2);
  await waitFor(() => stub.requestsFor(toSettle).length >= 1 || undefined, {
    what: "the first fulfilment attempt (503)",
  });
  await waitFor(async () => (await queues.sweep.getJobScheduler(SWEEP_SCHEDULER_ID)) ?? false);

  await loseEverything();
  // No check here that the jobs are gone: the worker may recreate them within milliseconds.
  // Instead, the jobs found later must be younger than the first webhook call, which the
  // original fulfil job made (see below).
  const firstCall = stub.requestsFor(toSettle)[0]!.receivedAt;
  expect(await statusOf(toSettle)).toBe("pending");
  accepted.add(toSettle);

  await waitFor(async () => (await queues.sweep.getJobScheduler(SWEEP_SCHEDULER_ID)) ?? false, {
    what: "the sweep scheduler to be recreated",
  });
  await waitFor(async () => (await statusOf(toSettle)) === "settled" || undefined, {
    what: "the hold whose fulfil job was lost to settle",
  });
  // The fulfil job that settled it was recreated after the loss; once it settled the hold, the
  // worker removed the hold's expire job.
  const fulfil = await waitFor(() => queues.fulfil.getJob(fulfilJobId(toSettle)));
  expect(fulfil.timestamp).toBeGreaterThan(firstCall);
  await waitFor(async () => (await queues.expire.getJob(expireJobId(toSettle))) === undefined, {
    what: "the settled hold's expire job to be removed",
  });
  await waitFor(async () => (await statusOf(toExpire)) === "expired" || undefined, {
    what: "the hold whose expire job was lost to expire",
  });
  expect((await getHold(db.db, toSettle)).settledAmount).toBe(20);
  await expectLedgerConsistent(db.db);
}

describe("the sweep: Postgres, not Redis, is the source of truth", () => {
  it("every key under the queue prefix deleted (what a FLUSHDB does to us): jobs come back, holds resolve", async () => {
    const stack = await startStack(REDIS_URL);
    const redis = new Redis(REDIS_URL);
    try {
      await lostJobsScenario(
        stack,
        async () => {
          expect(await deleteKeysUnder(redis, stack.env.HOLDFAST_QUEUE_PREFIX)).toBeGreaterThan(0);
        },
        "scan-del",
      );
    } finally {
      await stack.close();
      await deleteKeysUnder(redis, stack.env.HOLDFAST_QUEUE_PREFIX);
      redis.disconnect();
    }
  });

  it(`a real FLUSHDB (on Redis db ${FLUSH_DB}, which only this test uses): jobs come back, holds resolve`, async () => {
    // Another run of this suite on the same Redis must not flush under our feet.
    const lock = new Redis(REDIS_URL);
    const owner = randomUUID();
    await waitFor(async () => (await lock.set(FLUSH_LOCK, owner, "PX", 60_000, "NX")) === "OK", {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: "the db 9 lock",
    });
    const flusher = new Redis(REDIS_URL, { db: FLUSH_DB });
    let stack: Awaited<ReturnType<typeof startStack>> | undefined;
    try {
      stack = await startStack(dbUrl(FLUSH_DB));
      await lostJobsScenario(
        stack,
        async () => {
          expect(await flusher.dbsize()).toBeGreaterThan(0);
          expect(await flusher.flushdb()).toBe("OK");
        },
        "flushdb",
      );
    } finally {
      await stack?.close();
      await flusher.flushdb();
      flusher.disconnect();
      if ((await lock.get(FLUSH_LOCK)) === owner) await lock.del(FLUSH_LOCK);
      lock.disconnect();
    }
  });

  it("re-adds only the jobs Redis lost, and nothing when none are missing", async () => {
    const prefix = testPrefix();
    const redis = new Redis(REDIS_URL);
    const queues = createHoldQueues(redis, { prefix });
    try {
      const expiresAt = new Date(Date.now() + 60_000).toISOString();
      const [whole, noExpire, noFulfil, neither] = Array.from({ length: 4 }, () => ({
        id: randomUUID(),
        expiresAt,
        accountId: "sweep-jobs",
        amount: 5,
        orderId: null,
      }));
      const holds = [whole!, noExpire!, noFulfil!, neither!];
      for (const hold of holds) await scheduleHold(queues, hold, { fulfilment: true });
      const kept = await queues.expire.getJob(expireJobId(whole!.id));
      for (const hold of [noExpire!, neither!]) {
        await (await queues.expire.getJob(expireJobId(hold.id)))!.remove();
      }
      for (const hold of [noFulfil!, neither!]) {
        await (await queues.fulfil.getJob(fulfilJobId(hold.id)))!.remove();
      }
      // Without fulfilment only the expire jobs count.
      expect(await scheduleMissing(queues, holds, { fulfilment: false })).toBe(2);
      expect(await queues.fulfil.getWaitingCount()).toBe(2);
      expect(await scheduleMissing(queues, holds, { fulfilment: true })).toBe(2);
      for (const hold of holds) {
        expect(await (await queues.expire.getJob(expireJobId(hold.id)))?.getState()).toBe(
          "delayed",
        );
        expect(await (await queues.fulfil.getJob(fulfilJobId(hold.id)))?.getState()).toBe(
          "waiting",
        );
      }
      expect((await queues.expire.getJob(expireJobId(whole!.id)))?.timestamp).toBe(kept!.timestamp);
      expect(await scheduleMissing(queues, holds, { fulfilment: true })).toBe(0);
      expect(await queues.expire.getDelayedCount()).toBe(4);
      expect(await queues.fulfil.getWaitingCount()).toBe(4);
    } finally {
      await queues.close();
      await deleteKeysUnder(redis, prefix);
      redis.disconnect();
    }
  });

  it("Redis down when a purchase commits: 201 at once, the hold is saved, and a sweep enqueues its job later", async () => {
    const prefix = testPrefix();
    const down = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    down.on("error", () => {});
    const deadQueues = createHoldQueues(down, { prefix, failFast: true });
    const app = await createTestApp({
      db,
      holdPlaced: (hold) => scheduleHold(deadQueues, hold, { fulfilment: true }),
    });
    const redis = new Redis(REDIS_URL);
    const live = createHoldQueues(redis, { prefix });
    try {
      await fundedAccount(db.db, "down-1", 50);
      const started = Date.now();
      const r = await app.call("POST", "/v1/purchases", {
        token: SERVICE,
        key: randomUUID(),
        body: { accountId: "down-1", amount: 20, expiresInSeconds: 60 },
      });
      expect(r.status).toBe(201);
      expect(Date.now() - started).toBeLessThan(5000);
      const holdId: string = r.json.hold.id;
      expect(await statusOf(holdId)).toBe("pending");
      expect(await live.expire.getJob(expireJobId(holdId))).toBeUndefined();

      const result = await sweepHolds({ db: db.db, queues: live, fulfilment: true });
      expect(result.rescheduled).toBeGreaterThanOrEqual(1);
      const expire = await live.expire.getJob(expireJobId(holdId));
      expect(await expire?.getState()).toBe("delayed");
      expect(await (await live.fulfil.getJob(fulfilJobId(holdId)))?.getState()).toBe("waiting");
      // A second sweep finds the jobs there and adds nothing.
      await sweepHolds({ db: db.db, queues: live, fulfilment: true });
      expect((await live.expire.getDelayed()).filter((j) => j.data.holdId === holdId)).toHaveLength(
        1,
      );
      await expectLedgerConsistent(db.db);
    } finally {
      await deadQueues.close();
      down.disconnect();
      await live.close();
      await deleteKeysUnder(redis, prefix);
      redis.disconnect();
      await app.close();
    }
  });
});
