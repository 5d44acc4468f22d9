import { spawnSync } from "node:child_process";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getHold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { fulfilJobId } from "../../src/workers/queues.ts";
import { scheduleHold } from "../../src/workers/schedule-hold.ts";
import { ADMIN, SERVICE } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import {
  deleteKeysUnder,
  type FulfilmentStub,
  type Reply,
  spawnWorker,
  startFulfilmentStub,
  testPrefix,
  type WorkerProcess,
  waitFor,
} from "../helpers/workers.ts";

/** How the stub treats the n-th request for a hold, by the hold's orderId. */
const scripts: Record<string, (attempt: number) => Reply> = {
  // The first request is held open until the worker is killed; the retry is accepted.
  killed: (n) => (n === 0 ? { status: 200, hang: true } : { status: 200 }),
  slow: () => ({ status: 200, delayMs: 1500 }),
};

const prefix = testPrefix();
let db: TestDatabase;
let stub: FulfilmentStub;
let producer: Producer;
let redis: Redis;
const running: WorkerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  stub = await startFulfilmentStub((req, attempt) => scripts[req.json?.orderId]!(attempt));
  producer = await connectProducer(REDIS_URL, prefix);
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const w of running) if (w.child.exitCode === null) w.child.kill("SIGKILL");
  await Promise.all(running.map((w) => w.exited));
  await producer?.close();
  await deleteKeysUnder(redis, prefix);
  redis.disconnect();
  await stub?.close();
  await expectLedgerConsistent(db.db);
  await db.drop();
});

const worker = async () => {
  const w = await spawnWorker({
    DATABASE_URL: db.url,
    REDIS_URL,
    HOLDFAST_QUEUE_PREFIX: prefix,
    FULFILMENT_URL: stub.url,
    HOLDFAST_ADMIN_TOKEN: ADMIN,
    HOLDFAST_SERVICE_TOKEN: SERVICE,
  });
  running.push(w);
  return w;
};

async function placeAndSchedule(accountId: string, orderId: string) {
  await fundedAccount(db.db, accountId, 50);
  const { hold } = await placeHold(db.db, { accountId, amount: 20, orderId, expiresInSeconds: 60 });
  await scheduleHold(producer.queues, hold, { fulfilment: true });
  return hold.id;
}

async function purchaseTransactions(holdId: string): Promise<number> {
  const [row] = await db.db.execute<{ n: number }>(
    sql`SELECT count(DISTINCT transaction_id)::int AS n FROM entries WHERE hold_id = ${holdId}`,
  );
  return row!.n;
}

// Child processes start slowly on a busy machine (tsx compiles on start); the waits are bounded
// by the polls, these are only the outer limits.
describe("worker processes", { timeout: 90_000 }, () => {
  it("a worker killed with SIGKILL mid-job: a new worker picks the stalled job up, the hold settles once", async () => {
    const holdId = await placeAndSchedule("kill-1", "killed");
    const first = await worker();
    await waitFor(() => stub.requestsFor(holdId).length === 1 || undefined, {
      what: "the first worker to call the webhook",
    });
    first.child.kill("SIGKILL");
    expect(await first.exited).toBeNull();
    expect((await getHold(db.db, holdId)).status).toBe("pending");

    const second = await worker();
    // Recovery waits for the dead worker's lock to lapse (5 s) and a stalled check (2.5 s).
    const settled = await waitFor(
      async () => {
        const h = await getHold(db.db, holdId);
        return h.status !== "pending" && h;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "the hold to settle after the kill" },
    );
    expect(settled).toMatchObject({ status: "settled", settledAmount: 20 });
    expect(await purchaseTransactions(holdId)).toBe(1);
    const requests = stub.requestsFor(holdId);
    expect(requests).toHaveLength(2);
    expect(requests.map((r) => r.headers["idempotency-key"])).toEqual([holdId, holdId]);
    const job = await producer.queues.fulfil.getJob(fulfilJobId(holdId));
    expect(await job?.getState()).toBe("completed");
    expect(job?.returnvalue).toEqual({ outcome: "settled", settledAmount: 20 });

    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    await expectLedgerConsistent(db.db);
  });

  it("SIGTERM while the webhook answers slowly: the worker finishes that job, then exits 0", async () => {
    const holdId = await placeAndSchedule("term-1", "slow");
    const w = await worker();
    await waitFor(() => stub.requestsFor(holdId).length === 1 || undefined, {
      what: "the worker to call the webhook",
    });
    w.child.kill("SIGTERM");
    expect(await w.exited).toBe(0);
    expect(w.output()).toContain('"msg":"shutting down"');
    expect(await getHold(db.db, holdId)).toMatchObject({ status: "settled", settledAmount: 20 });
    expect(stub.requestsFor(holdId)).toHaveLength(1);
    const job = await producer.queues.fulfil.getJob(fulfilJobId(holdId));
    expect(await job?.getState()).toBe("completed");
    await expectLedgerConsistent(db.db);
  });

  it("holdfast verify finds the ledger clean after both", () => {
    const result = spawnSync(process.execPath, ["bin/holdfast.js", "verify"], {
      env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: "silent" },
      encoding: "utf8",
    });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });
});
