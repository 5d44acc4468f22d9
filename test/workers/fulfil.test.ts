import { createHmac, randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsPanel } from "../../src/http/admin/holds-panel.ts";
import { createLogger } from "../../src/logger.ts";
import { getHold, type Hold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { fulfilHoldProcessor } from "../../src/workers/fulfil-hold.ts";
import { fulfilOutcomeLine, withJobLog } from "../../src/workers/job-log.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { expireJobId, fulfilJobId } from "../../src/workers/queues.ts";
import { scheduleHold } from "../../src/workers/schedule-hold.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import {
  deleteKeysUnder,
  type FulfilmentStub,
  type Reply,
  type StubRequest,
  startFulfilmentStub,
  waitFor,
  workerEnv,
} from "../helpers/workers.ts";

const SECRET = "whsec-test-0123456789";
const RETRY_BASE_MS = 50;
const TIMEOUT_MS = 400;

/** What the stub answers, by the purchase's orderId, on the n-th request for the hold. */
const scripts: Record<string, (attempt: number) => Reply> = {
  ok: () => ({ status: 200, body: { ok: true } }),
  partial: () => ({ status: 200, body: { amount: 7 } }),
  "too-much": (n) => (n === 0 ? { status: 201, body: { amount: 21 } } : { status: 200 }),
  fraction: (n) =>
    n === 0 ? { status: 200, body: { amount: 2.5 } } : { status: 200, body: { amount: 3 } },
  "amount-string": (n) => (n === 0 ? { status: 200, body: { amount: "7" } } : { status: 204 }),
  huge: (n) =>
    n === 0
      ? { status: 200, body: { amount: 4, pad: "x".repeat(70_000) } }
      : { status: 200, body: { amount: 4 } },
  refused: () => ({ status: 422, body: { reason: "out of stock" } }),
  "refused-bare": () => ({ status: 404, body: "<html>no</html>" }),
  flaky: (n) => (n === 0 ? { status: 503 } : { status: 200 }),
  throttled: (n) => (n === 0 ? { status: 429 } : n === 1 ? { status: 408 } : { status: 204 }),
  slow: (n) => (n === 0 ? { status: 200, hang: true } : { status: 200 }),
  race: () => ({ status: 200, delayMs: 100 }),
};

let db: TestDatabase;
let stub: FulfilmentStub;
let producer: Producer;
let workers: RunningWorkers;
let t: TestApp;
let redis: Redis;
let env: ReturnType<typeof workerEnv>;

beforeAll(async () => {
  db = await createTestDatabase();
  stub = await startFulfilmentStub((req, attempt) => {
    const script = scripts[req.json?.orderId as string];
    return script ? script(attempt) : { status: 500 };
  });
  env = workerEnv({ FULFILMENT_URL: stub.url, FULFILMENT_SECRET: SECRET });
  producer = await connectProducer(REDIS_URL, env.HOLDFAST_QUEUE_PREFIX);
  t = await createTestApp({
    db,
    holdPlaced: (hold) =>
      scheduleHold(producer.queues, hold, { fulfilment: true, retryBaseMs: RETRY_BASE_MS }),
    mounts: [holdsPanel(producer.queues.all, { fulfilment: true })],
  });
  workers = await startWorkers({
    db: db.db,
    env,
    logger: createLogger("silent"),
    redis: REDIS_URL,
    tuning: { fulfilTimeoutMs: TIMEOUT_MS, retryBaseMs: RETRY_BASE_MS },
  });
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await workers?.close();
  await producer?.close();
  await deleteKeysUnder(redis, env.HOLDFAST_QUEUE_PREFIX);
  redis.disconnect();
  await stub?.close();
  await expectLedgerConsistent(db.db);
  await t?.close();
  await db.drop();
});

async function purchase(accountId: string, orderId: string, amount = 20): Promise<Hold> {
  await fundedAccount(db.db, accountId, 50);
  const r = await t.call("POST", "/v1/purchases", {
    token: SERVICE,
    key: randomUUID(),
    body: {
      accountId,
      amount,
      orderId,
      description: `scenario ${orderId}`,
      metadata: { sku: "sword-1" },
      expiresInSeconds: 60,
    },
  });
  expect(r.status).toBe(201);
  return r.json.hold;
}

const resolved = (holdId: string) =>
  waitFor(
    async () => {
      const hold = await getHold(db.db, holdId);
      return hold.status !== "pending" && hold;
    },
    { what: `hold ${holdId} to resolve` },
  );

/**
 * The hold's fulfil job once completed. Its last log line and its progress are written after
 * the hold is resolved and its expire job removed, so only completion says they are there.
 */
const completedJob = (holdId: string) =>
  waitFor(
    async () => {
      const job = await producer.queues.fulfil.getJob(fulfilJobId(holdId));
      return (await job?.getState()) === "completed" && job;
    },
    { what: `the fulfil job of ${holdId} to complete` },
  );

/** The worker removes the expire job of a hold its fulfil job settled or released. */
const expireJobGone = (holdId: string) =>
  waitFor(async () => (await producer.queues.expire.getJob(expireJobId(holdId))) === undefined, {
    what: `the expire job of ${holdId} to be removed`,
  });

async function purchaseTransactions(holdId: string): Promise<number> {
  const [row] = await db.db.execute<{ n: number }>(
    sql`SELECT count(DISTINCT transaction_id)::int AS n FROM entries WHERE hold_id = ${holdId}`,
  );
  return row!.n;
}

function verifySignature(request: StubRequest): boolean {
  const header = String(request.headers["holdfast-signature"]);
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = createHmac("sha256", SECRET).update(`${match[1]}.${request.body}`).digest("hex");
  const age = Math.abs(Date.now() / 1000 - Number(match[1]));
  return expected === match[2] && age < 60;
}

describe("fulfil worker", () => {
  it("2xx settles the whole hold; the webhook gets the hold, its id as Idempotency-Key, and a valid signature", async () => {
    const hold = await purchase("f-ok", "ok");
    const settled = await resolved(hold.id);
    expect(settled).toMatchObject({ status: "settled", settledAmount: 20 });
    await expireJobGone(hold.id);
    const [request, ...more] = stub.requestsFor(hold.id);
    expect(more).toEqual([]);
    expect(request!.headers["idempotency-key"]).toBe(hold.id);
    expect(request!.headers["content-type"]).toBe("application/json");
    expect(request!.json).toEqual({
      holdId: hold.id,
      accountId: "f-ok",
      amount: 20,
      orderId: "ok",
      description: "scenario ok",
      metadata: { sku: "sword-1" },
    });
    expect(verifySignature(request!)).toBe(true);
    // The signature is over the exact bytes: a changed body does not verify.
    expect(verifySignature({ ...request!, body: request!.body.replace("20", "2") })).toBe(false);
    expect(await purchaseTransactions(hold.id)).toBe(1);
    const job = await completedJob(hold.id);
    expect(job.returnvalue).toEqual({ outcome: "settled", settledAmount: 20 });
    const { logs } = await producer.queues.fulfil.getJobLogs(job.id!);
    expect(logs).toEqual([
      expect.stringMatching(
        new RegExp(
          `^attempt 1 of \\d+ · deadline ${hold.expiresAt} \\(in \\d+m\\d+s\\) · hold /v1/holds/${hold.id} · panel /admin/holds\\?account=f-ok$`,
        ),
      ),
      "settled 20 of 20",
    ]);
    await expectLedgerConsistent(db.db);
  });

  it('2xx with {"amount": n} settles n and frees the rest', async () => {
    const hold = await purchase("f-partial", "partial");
    expect(await resolved(hold.id)).toMatchObject({ status: "settled", settledAmount: 7 });
    const account = await t.call("GET", "/v1/accounts/f-partial", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 43, held: 0, available: 43 });
    await expectLedgerConsistent(db.db);
  });

  it.each([
    ["too-much", "an amount above the hold (21 of 20)", 20],
    ["fraction", "a fractional amount (2.5)", 3],
    ["amount-string", 'an amount that is not a number ("7")', 20],
    ["huge", "a body over 64 KiB", 4],
  ])(
    "2xx with %s: a bad answer, retried, never captured whole from it",
    async (script, _what, settledAmount) => {
      const hold = await purchase(`f-${script}`, script);
      expect(await resolved(hold.id)).toMatchObject({ status: "settled", settledAmount });
      expect(stub.requestsFor(hold.id)).toHaveLength(2);
      expect(await purchaseTransactions(hold.id)).toBe(1);
      await expectLedgerConsistent(db.db);
    },
  );

  it("4xx releases the hold with the body's reason, or a generic one; nothing is posted", async () => {
    const hold = await purchase("f-refused", "refused");
    expect(await resolved(hold.id)).toMatchObject({
      status: "released",
      reason: "out of stock",
      settledAmount: null,
    });
    await expireJobGone(hold.id);
    // Told apart from a settle in the dashboard: its progress and its log say it was refused.
    const job = await completedJob(hold.id);
    expect(job.progress).toEqual({ outcome: "refused", reason: "out of stock" });
    const { logs } = await producer.queues.fulfil.getJobLogs(job.id!);
    expect(logs[1]).toBe("REFUSED by fulfilment: out of stock (hold released)");
    const bare = await purchase("f-refused-bare", "refused-bare");
    expect(await resolved(bare.id)).toMatchObject({
      status: "released",
      reason: "fulfilment refused: HTTP 404",
    });
    expect(stub.requestsFor(hold.id)).toHaveLength(1);
    expect(await purchaseTransactions(hold.id)).toBe(0);
    const account = await t.call("GET", "/v1/accounts/f-refused", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 50, held: 0, available: 50 });
    await expectLedgerConsistent(db.db);
  });

  it("503 then 200: settled after a retry, with the same Idempotency-Key", async () => {
    const hold = await purchase("f-flaky", "flaky");
    expect(await resolved(hold.id)).toMatchObject({ status: "settled", settledAmount: 20 });
    const requests = stub.requestsFor(hold.id);
    expect(requests).toHaveLength(2);
    expect(requests.map((r) => r.headers["idempotency-key"])).toEqual([hold.id, hold.id]);
    expect(await purchaseTransactions(hold.id)).toBe(1);
    const job = await completedJob(hold.id);
    const { logs } = await producer.queues.fulfil.getJobLogs(job.id!);
    expect(logs).toEqual([
      expect.stringMatching(/^attempt 1 of (\d+) · deadline /),
      expect.stringMatching(
        /^failed: fulfilment answered HTTP 503; will retry; \d+ attempt\(s\) left$/,
      ),
      expect.stringMatching(/^attempt 2 of \d+ · deadline /),
      "settled 20 of 20",
    ]);
    await expectLedgerConsistent(db.db);
  });

  it("429 and 408 are retried too, not taken as refusals", async () => {
    const hold = await purchase("f-throttled", "throttled");
    expect(await resolved(hold.id)).toMatchObject({ status: "settled", settledAmount: 20 });
    expect(stub.requestsFor(hold.id)).toHaveLength(3);
    await expectLedgerConsistent(db.db);
  });

  it("a webhook that never answers times out and is retried", async () => {
    const hold = await purchase("f-slow", "slow");
    expect(await resolved(hold.id)).toMatchObject({ status: "settled", settledAmount: 20 });
    const [first, second] = stub.requestsFor(hold.id);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(await purchaseTransactions(hold.id)).toBe(1);
    await expectLedgerConsistent(db.db);
  });

  it("the job run twice at once, racing an API settle: one purchase transaction", async () => {
    await fundedAccount(db.db, "f-race", 50);
    // Placed without enqueueing, so only the calls below act on it.
    const { hold } = await placeHold(db.db, { accountId: "f-race", amount: 20, orderId: "race" });
    const processor = fulfilHoldProcessor({
      db: db.db,
      fulfilment: { url: stub.url, secret: SECRET },
      logger: createLogger("silent"),
    });
    const job = { data: { holdId: hold.id } };
    const outcomes = await Promise.allSettled([
      processor(job),
      processor(job),
      new Promise((r) => setTimeout(r, 50)).then(() =>
        t.call("POST", `/v1/holds/${hold.id}/settle`, { token: SERVICE, body: { amount: 5 } }),
      ),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    const final = await getHold(db.db, hold.id);
    expect(final.status).toBe("settled");
    // Whoever won, the other two saw a settled hold and did nothing.
    expect([5, 20]).toContain(final.settledAmount);
    expect(await purchaseTransactions(hold.id)).toBe(1);
    // Run again later: the hold is no longer pending, so nothing is posted or sent.
    const sent = stub.requestsFor(hold.id).length;
    expect(await processor(job)).toEqual({ outcome: "skipped", why: "settled" });
    expect(stub.requestsFor(hold.id)).toHaveLength(sent);
    await expectLedgerConsistent(db.db);
  });

  it("a hold released before its fulfil job starts is left alone", async () => {
    await fundedAccount(db.db, "f-gone", 50);
    const { hold } = await placeHold(db.db, { accountId: "f-gone", amount: 20, orderId: "ok" });
    await t.call("POST", `/v1/holds/${hold.id}/release`, { token: SERVICE, body: {} });
    await scheduleHold(producer.queues, hold, { fulfilment: true, retryBaseMs: RETRY_BASE_MS });
    const job = await waitFor(async () => {
      const j = await producer.queues.fulfil.getJob(fulfilJobId(hold.id));
      return (await j?.getState()) === "completed" && j;
    });
    expect(job.returnvalue).toEqual({ outcome: "skipped", why: "released" });
    expect(stub.requestsFor(hold.id)).toEqual([]);
  });

  it("the links in a job's log lead to its hold and to the holds panel's search for its account", async () => {
    const hold = await purchase("f-links", "ok");
    const job = await completedJob(hold.id);
    const { logs } = await producer.queues.fulfil.getJobLogs(job.id!);
    const holdLink = / · hold (\/\S+)/.exec(logs[0]!)?.[1];
    const panelLink = / · panel (\/\S+)/.exec(logs[0]!)?.[1];
    expect(holdLink).toBe(`/v1/holds/${hold.id}`);
    const api = await t.call("GET", holdLink!, { token: SERVICE });
    expect(api.json).toMatchObject({ id: hold.id, status: "settled" });
    const panel = await t.call("GET", panelLink!, { token: ADMIN });
    expect(panel.status).toBe(200);
    expect(panel.text).toContain("Holds of account f-links");
    expect(panel.text).toContain(`<code>${hold.id}</code>`);
  });

  it("a job log that Redis refuses changes nothing the attempt did; the refusal goes to pino", async () => {
    const warnings: { msg: string }[] = [];
    const logger = pino(
      { level: "warn" },
      { write: (line: string) => warnings.push(JSON.parse(line)) },
    );
    const processor = withJobLog(
      fulfilHoldProcessor({ db: db.db, fulfilment: { url: stub.url, secret: SECRET }, logger }),
      fulfilOutcomeLine,
      logger,
    );
    const down = () =>
      Promise.reject(new Error("READONLY You can't write against a read only replica."));
    const jobOf = (holdId: string) =>
      ({
        id: `fulfil-${holdId}`,
        data: { holdId },
        attemptsMade: 0,
        opts: { attempts: 3 },
        log: down,
        updateProgress: down,
      }) as unknown as Job;
    await fundedAccount(db.db, "f-log-down", 60);
    const place = (orderId: string) =>
      placeHold(db.db, { accountId: "f-log-down", amount: 20, orderId }).then((r) => r.hold);
    const [ok, refused, flaky] = await Promise.all([place("ok"), place("refused"), place("flaky")]);

    expect(await processor(jobOf(ok.id))).toEqual({ outcome: "settled", settledAmount: 20 });
    expect(await processor(jobOf(refused.id))).toEqual({
      outcome: "released",
      reason: "out of stock",
    });
    // The attempt's own error is what BullMQ sees, not the log's.
    await expect(processor(jobOf(flaky.id))).rejects.toMatchObject({
      name: "RetryableFulfilmentError",
      status: 503,
    });
    expect((await getHold(db.db, ok.id)).status).toBe("settled");
    expect((await getHold(db.db, refused.id)).status).toBe("released");
    expect((await getHold(db.db, flaky.id)).status).toBe("pending");
    // Two lines per attempt and the refused job's progress: seven writes refused, seven warnings.
    expect(warnings.map((w) => w.msg).sort()).toEqual([
      "could not mark a refused job",
      ...Array(6).fill("could not write a job log line"),
    ]);
    await expectLedgerConsistent(db.db);
  });

  it("a malformed payload is an UnrecoverableError", async () => {
    const processor = fulfilHoldProcessor({
      db: db.db,
      fulfilment: { url: stub.url },
      logger: createLogger("silent"),
    });
    await expect(processor({ data: { holdId: 42 } })).rejects.toMatchObject({
      name: "UnrecoverableError",
    });
    await expect(processor({ data: { holdId: randomUUID(), extra: 1 } })).rejects.toMatchObject({
      name: "UnrecoverableError",
    });
  });
});
