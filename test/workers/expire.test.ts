import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { registry } from "../../src/metrics.ts";
import { getHold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { collectQueueDepth } from "../../src/workers/collect-queue-depth.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { expireJobId, fulfilJobId } from "../../src/workers/queues.ts";
import { batchedUnscheduler, scheduleHold } from "../../src/workers/schedule-hold.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder, waitFor, workerEnv } from "../helpers/workers.ts";

const env = workerEnv();
let db: TestDatabase;
let producer: Producer;
let workers: RunningWorkers;
let t: TestApp;
let redis: Redis;

beforeAll(async () => {
  db = await createTestDatabase();
  producer = await connectProducer(REDIS_URL, env.HOLDFAST_QUEUE_PREFIX);
  t = await createTestApp({
    db,
    holdPlaced: (hold) => scheduleHold(producer.queues, hold, { fulfilment: false }),
    holdResolved: batchedUnscheduler(producer.queues),
  });
  workers = await startWorkers({
    db: db.db,
    env,
    logger: createLogger("silent"),
    redis: REDIS_URL,
  });
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await workers?.close();
  await producer?.close();
  await deleteKeysUnder(redis, env.HOLDFAST_QUEUE_PREFIX);
  redis.disconnect();
  await expectLedgerConsistent(db.db);
  await t?.close();
  await db.drop();
});

const purchase = (body: Record<string, unknown>) =>
  t.call("POST", "/v1/purchases", { token: SERVICE, key: randomUUID(), body });

describe("expire worker", () => {
  it("a hold placed with expiresInSeconds: 1 is expired by its expire job", async () => {
    await fundedAccount(db.db, "exp-1", 50);
    const r = await purchase({ accountId: "exp-1", amount: 20, expiresInSeconds: 1 });
    expect(r.status).toBe(201);
    const holdId: string = r.json.hold.id;
    const job = await producer.queues.expire.getJob(expireJobId(holdId));
    expect(await job?.getState()).toBe("delayed");

    const hold = await waitFor(
      async () => {
        const h = await getHold(db.db, holdId);
        return h.status !== "pending" && h;
      },
      { what: "the hold to expire" },
    );
    expect(hold).toMatchObject({ status: "expired", reason: "expired", settledAmount: null });
    expect(Date.parse(hold.resolvedAt!)).toBeGreaterThanOrEqual(Date.parse(hold.expiresAt));
    const account = await t.call("GET", "/v1/accounts/exp-1", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 50, held: 0, available: 50 });
    await waitFor(async () => (await job?.getState()) === "completed" || undefined, {
      what: "the expire job to complete",
    });
    const { logs } = await producer.queues.expire.getJobLogs(job!.id!);
    expect(logs).toEqual([
      expect.stringMatching(
        new RegExp(
          `^attempt 1 of 10 · deadline ${hold.expiresAt} \\(.*\\) · hold /v1/holds/${holdId} · `,
        ),
      ),
      "expired",
    ]);
    await expectLedgerConsistent(db.db);
  });

  it("an expire job that runs before the deadline (clock skew) is put back until it is due", async () => {
    await fundedAccount(db.db, "exp-early", 10);
    const { hold } = await placeHold(db.db, {
      accountId: "exp-early",
      amount: 10,
      expiresInSeconds: 2,
    });
    // As if the producer's clock were two seconds ahead of Postgres's: due "now".
    await producer.queues.expire.add(
      "expire",
      { holdId: hold.id },
      { jobId: expireJobId(hold.id), attempts: 1 },
    );
    const job = await producer.queues.expire.getJob(expireJobId(hold.id));
    await waitFor(async () => (await job!.getState()) === "delayed" || undefined, {
      what: "the early job to be delayed again",
    });
    expect((await getHold(db.db, hold.id)).status).toBe("pending");
    const expired = await waitFor(async () => {
      const h = await getHold(db.db, hold.id);
      return h.status === "expired" && h;
    });
    expect(Date.parse(expired.resolvedAt!)).toBeGreaterThanOrEqual(Date.parse(hold.expiresAt));
    await expectLedgerConsistent(db.db);
  });

  it("a malformed payload fails at once, without retries", async () => {
    const job = await producer.queues.expire.add(
      "expire",
      { holdId: "not-a-uuid" },
      { jobId: `expire-malformed-${randomUUID()}`, attempts: 5 },
    );
    await waitFor(async () => (await job.getState()) === "failed" || undefined, {
      what: "the malformed job to fail",
    });
    const failed = await producer.queues.expire.getJob(job.id!);
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(/malformed job payload/);
    // Not "4 attempt(s) left": BullMQ never retries an UnrecoverableError.
    const { logs } = await producer.queues.expire.getJobLogs(job.id!);
    expect(logs).toEqual([
      expect.stringMatching(/^attempt 1 of 5 · /),
      expect.stringMatching(/^failed: malformed job payload: .*; no attempt left$/s),
    ]);
  });

  it("a duplicate enqueue of a hold's jobs is a no-op", async () => {
    await fundedAccount(db.db, "exp-dup", 10);
    const { hold } = await placeHold(db.db, { accountId: "exp-dup", amount: 1 });
    await scheduleHold(producer.queues, hold, { fulfilment: false });
    await scheduleHold(producer.queues, hold, { fulfilment: false });
    const counts = await producer.queues.expire.getJobCounts("delayed");
    const delayed = await producer.queues.expire.getDelayed();
    expect(delayed.filter((j) => j.data.holdId === hold.id)).toHaveLength(1);
    expect(counts.delayed).toBeGreaterThanOrEqual(1);
  });

  it("a hold's jobs say whose hold it is, how much, which order and until when", async () => {
    await fundedAccount(db.db, "exp-named", 100);
    const { hold } = await placeHold(db.db, {
      accountId: "exp-named",
      amount: 75,
      orderId: "ok-1002",
    });
    await scheduleHold(producer.queues, hold, { fulfilment: true });
    const expire = await producer.queues.expire.getJob(expireJobId(hold.id));
    const fulfil = await producer.queues.fulfil.getJob(fulfilJobId(hold.id));
    expect(fulfil?.name).toBe("fulfil · exp-named · 75 · order ok-1002");
    expect(expire?.name).toBe("expire · exp-named · 75 · order ok-1002");
    expect(expire?.data).toEqual({
      holdId: hold.id,
      accountId: "exp-named",
      amount: 75,
      orderId: "ok-1002",
      expiresAt: hold.expiresAt,
    });
    await fulfil?.remove();
  });

  it("settling or releasing a hold over HTTP removes its expire job: delayed jobs are pending holds", async () => {
    await fundedAccount(db.db, "exp-gone", 100);
    const place = () =>
      t.call("POST", "/v1/purchases", {
        token: SERVICE,
        key: randomUUID(),
        body: { accountId: "exp-gone", amount: 10, expiresInSeconds: 600 },
      });
    const [a, b, c] = await Promise.all([place(), place(), place()]);
    const ids = [a, b, c].map((r) => r.json.hold.id as string);
    const jobs = () => Promise.all(ids.map((id) => producer.queues.expire.getJob(expireJobId(id))));
    expect((await jobs()).every((j) => j !== undefined)).toBe(true);

    const settled = await t.call("POST", `/v1/holds/${ids[0]}/settle`, {
      token: SERVICE,
      body: {},
    });
    const released = await t.call("POST", `/v1/holds/${ids[1]}/release`, {
      token: SERVICE,
      body: {},
    });
    expect([settled.status, released.status]).toEqual([200, 200]);
    const [first, second, third] = await jobs();
    expect([first, second]).toEqual([undefined, undefined]);
    expect(await third?.getState()).toBe("delayed");
  });

  it("/metrics reports the depth of each hold queue", async () => {
    const stop = collectQueueDepth(producer.queues.all);
    try {
      const text = await registry.metrics();
      expect(text).toMatch(/holdfast_queue_jobs\{queue="holds-expire",state="delayed"\} [1-9]/);
      expect(text).toMatch(/holdfast_queue_jobs\{queue="holds-sweep",state="completed"\} \d+/);
    } finally {
      stop();
    }
  });
});
