import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/ledger/ids.ts";
import { createLogger } from "../../src/logger.ts";
import { deliverLane } from "../../src/webhooks/deliver.ts";
import { dispatchEvents } from "../../src/webhooks/dispatch.ts";
import { QUEUE_NAMES } from "../../src/workers/queues.ts";
import { laneJobId } from "../../src/workers/webhooks.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { verifyHoldfast } from "../helpers/signatures.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import {
  deleteKeysUnder,
  spawnWorker,
  testPrefix,
  type WorkerProcess,
  waitFor,
  workerEnv,
} from "../helpers/workers.ts";

/** A subscriber: records every request, answers what `answer` says for it. */
interface Received {
  id: string;
  accountId: string;
  sequence: number;
  type: string;
  header: string | undefined;
  signature: string;
  body: string;
}

let answer: (event: Received, nth: number) => number = () => 200;
const received: Received[] = [];
let receiver: Server;
let receiverUrl: string;

let t: TestApp;
const prefix = testPrefix();
let workers: RunningWorkers | undefined;
beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      const event = JSON.parse(body);
      const r: Received = {
        id: event.id,
        accountId: event.accountId,
        sequence: event.sequence,
        type: event.type,
        header: req.headers["holdfast-event-id"] as string | undefined,
        signature: String(req.headers["holdfast-signature"]),
        body,
      };
      const nth = received.filter((x) => x.id === r.id).length;
      received.push(r);
      res.statusCode = answer(r, nth);
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
  t = await createTestApp({ env: { HOLDFAST_QUEUE_PREFIX: prefix } });
});
afterAll(async () => {
  await workers?.close();
  await new Promise((resolve) => receiver.close(resolve));
  await expectLedgerConsistent(t.db.db);
  const redis = new Redis(REDIS_URL);
  await deleteKeysUnder(redis, prefix).finally(() => redis.disconnect());
  await t.close();
});

const admin = (method: string, path: string, body?: unknown) =>
  t.call(method, path, { token: ADMIN, body });
const service = (method: string, path: string, key?: string, body?: unknown) =>
  t.call(method, path, { token: SERVICE, key, body });

async function startInProcessWorkers() {
  workers = await startWorkers({
    db: t.db.db,
    env: workerEnv({ HOLDFAST_QUEUE_PREFIX: prefix }),
    logger: createLogger("silent"),
    redis: REDIS_URL,
    tuning: { webhookRetryBaseMs: 100 },
  });
}

/** Purchases (placed, settled or released) on `accounts`, `n` each: three events apiece at most. */
async function traffic(accounts: string[], n: number, tag: string) {
  for (const accountId of accounts) await fundedAccount(t.db.db, accountId, 1000);
  await Promise.all(
    accounts.map(async (accountId) => {
      for (let i = 0; i < n; i++) {
        const r = await service("POST", "/v1/purchases", `${tag}-${accountId}-${i}`, {
          accountId,
          amount: 1,
        });
        expect(r.status).toBe(201);
        const verb = i % 2 === 0 ? "settle" : "release";
        expect((await service("POST", `/v1/holds/${r.json.hold.id}/${verb}`)).status).toBe(200);
      }
    }),
  );
}

/** The feed's events of `accounts`, in feed order. */
async function feedOf(accounts: string[]) {
  const events: { id: string; accountId: string; sequence: number; type: string }[] = [];
  for (const accountId of accounts) {
    let after = "";
    for (;;) {
      const page = await service("GET", `/v1/events?accountId=${accountId}&limit=500${after}`);
      if (page.json.data.length === 0) break;
      events.push(...page.json.data);
      after = `&after=${page.json.nextCursor}`;
    }
  }
  return events;
}

/** Every event of `accounts` reached the receiver, signed; first receipts in sequence order. */
function expectAllReceived(
  events: { id: string; accountId: string; sequence: number }[],
  secret: string,
) {
  const ids = new Set(received.map((r) => r.id));
  const missing = events.filter((e) => !ids.has(e.id));
  expect(missing).toEqual([]);
  for (const r of received) {
    expect(r.header).toBe(r.id);
    expect(verifyHoldfast(r.body, r.signature, secret), r.signature).toBe(true);
  }
  for (const accountId of new Set(events.map((e) => e.accountId))) {
    const firsts: number[] = [];
    for (const r of received)
      if (r.accountId === accountId && !firsts.includes(r.sequence)) firsts.push(r.sequence);
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
  }
}

describe("webhook endpoints (admin)", () => {
  it("create shows the secret once; list, rotate, delete; the service token is refused", async () => {
    const created = await admin("POST", "/v1/webhook-endpoints", {
      url: "https://example.com/hook",
      types: ["hold.settled"],
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      url: "https://example.com/hook",
      types: ["hold.settled"],
      secret: expect.stringMatching(/^whsec_/),
    });
    const listed = await admin("GET", "/v1/webhook-endpoints");
    const mine = listed.json.data.find((e: { id: string }) => e.id === created.json.id);
    expect(mine).toEqual({
      id: created.json.id,
      url: "https://example.com/hook",
      types: ["hold.settled"],
      createdAt: created.json.createdAt,
    });
    const rotated = await admin("POST", `/v1/webhook-endpoints/${created.json.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).not.toBe(created.json.secret);
    expect(
      (await admin("GET", `/v1/webhook-endpoints/${created.json.id}/deliveries`)).json,
    ).toEqual({ data: [] });
    expect((await admin("DELETE", `/v1/webhook-endpoints/${created.json.id}`)).status).toBe(204);
    const again = await admin("DELETE", `/v1/webhook-endpoints/${created.json.id}`);
    expect([again.status, again.json.code]).toEqual([404, "webhook_endpoint_not_found"]);
    const gone = await admin("POST", `/v1/webhook-endpoints/${created.json.id}/rotate-secret`);
    expect(gone.json.code).toBe("webhook_endpoint_not_found");
    const forbidden = await service("POST", "/v1/webhook-endpoints", undefined, {
      url: "https://example.com/hook",
    });
    expect([forbidden.status, forbidden.json.code]).toEqual([403, "forbidden"]);
    for (const body of [
      { url: "ftp://example.com/x" },
      { url: "not a url" },
      { url: "https://example.com", types: ["hold.exploded"] },
      { url: "https://example.com", types: [] },
      { url: "https://example.com", extra: 1 },
    ]) {
      const r = await admin("POST", "/v1/webhook-endpoints", body);
      expect([body, r.status, r.json.code]).toEqual([body, 400, "invalid_request"]);
    }
  });
});

describe("delivery", () => {
  let secret: string;
  let endpointId: string;

  it("delivers every event from the subscription on, signed, in sequence per account", async () => {
    const created = await admin("POST", "/v1/webhook-endpoints", { url: receiverUrl });
    secret = created.json.secret;
    endpointId = created.json.id;
    await startInProcessWorkers();
    const accounts = ["wh-a", "wh-b", "wh-c"];
    await traffic(accounts, 6, "d1");
    const events = await feedOf(accounts);
    expect(events.length).toBe(3 * (2 + 12));
    await waitFor(() => events.every((e) => received.some((r) => r.id === e.id)), {
      what: "every event delivered",
      timeoutMs: 20_000,
    });
    expectAllReceived(events, secret);
  });

  it("a failing event holds back its account's later events only, and is retried until it passes", async () => {
    received.length = 0;
    // Every event of wh-slow fails three times first.
    answer = (event, nth) => (event.accountId === "wh-slow" && nth < 3 ? 503 : 200);
    await traffic(["wh-slow", "wh-fast"], 3, "d2");
    const fast = await feedOf(["wh-fast"]);
    await waitFor(() => fast.every((e) => received.some((r) => r.id === e.id)), {
      what: "wh-fast delivered",
      timeoutMs: 20_000,
    });
    const slow = await feedOf(["wh-slow"]);
    // While wh-fast went through, wh-slow was still on its first event.
    const slowSoFar = new Set(received.filter((r) => r.accountId === "wh-slow").map((r) => r.id));
    expect(slowSoFar.size).toBeLessThan(slow.length);
    await waitFor(() => slow.every((e) => received.some((r) => r.id === e.id && r.body)), {
      what: "wh-slow delivered after retries",
      timeoutMs: 30_000,
    });
    await waitFor(
      async () => {
        const [row] = await t.db.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'`;
        return row!.n === 0;
      },
      { what: "no delivery pending", timeoutMs: 30_000 },
    );
    expectAllReceived([...slow, ...fast], secret);
    for (const e of slow) expect(received.filter((r) => r.id === e.id)).toHaveLength(4);
    const attempts = await admin("GET", `/v1/webhook-endpoints/${endpointId}/deliveries?limit=500`);
    const failedFirst = attempts.json.data.filter(
      (a: { eventId: string; attempt: number }) => a.eventId === slow[0]!.id,
    );
    expect(
      failedFirst.map((a: { statusCode: number; attempt: number }) => [a.attempt, a.statusCode]),
    ).toEqual([
      [4, 200],
      [3, 503],
      [2, 503],
      [1, 503],
    ]);
    expect(failedFirst.every((a: { latencyMs: number }) => a.latencyMs >= 0)).toBe(true);
    answer = () => 200;
  });

  it("after a rotation, both the new and the old secret verify the signature", async () => {
    received.length = 0;
    const rotated = await admin("POST", `/v1/webhook-endpoints/${endpointId}/rotate-secret`);
    await traffic(["wh-rot"], 1, "d3");
    const events = await feedOf(["wh-rot"]);
    await waitFor(() => events.every((e) => received.some((r) => r.id === e.id)), {
      what: "delivered after rotation",
      timeoutMs: 20_000,
    });
    for (const r of received) {
      expect(verifyHoldfast(r.body, r.signature, rotated.json.secret)).toBe(true);
      expect(verifyHoldfast(r.body, r.signature, secret)).toBe(true);
      expect(verifyHoldfast(r.body, r.signature, "whsec_wrong")).toBe(false);
    }
    const old = secret;
    secret = rotated.json.secret;
    // Once the overlap has passed, only the new secret signs.
    await t.db.sql`UPDATE webhook_endpoints SET previous_secret_until = now() - interval '1 second'
                    WHERE id = ${endpointId}`;
    received.length = 0;
    await traffic(["wh-rot-later"], 1, "d3b");
    const later = await feedOf(["wh-rot-later"]);
    await waitFor(() => later.every((e) => received.some((r) => r.id === e.id)), {
      what: "delivered after the overlap",
      timeoutMs: 20_000,
    });
    for (const r of received) {
      expect(r.signature.split(",").filter((p) => p.startsWith("v1="))).toHaveLength(1);
      expect(verifyHoldfast(r.body, r.signature, secret)).toBe(true);
      expect(verifyHoldfast(r.body, r.signature, old)).toBe(false);
    }
  });

  it("the dashboard shows a failing lane as a delayed job named by account and event, with its attempts", async () => {
    answer = (event) => (event.accountId === "wh-dash" ? 500 : 200);
    await traffic(["wh-dash"], 1, "d5");
    const queue = new Queue(QUEUE_NAMES.webhooks, { connection: t.redis, prefix });
    try {
      const job = await waitFor(
        async () => {
          const found = await queue.getJob(laneJobId({ endpointId, accountId: "wh-dash" }));
          return found && (await found.isDelayed()) ? found : undefined;
        },
        { what: "the lane's job waiting for its next attempt", timeoutMs: 20_000 },
      );
      expect(job.name).toBe("webhook · wh-dash · account.created #1");
      const { logs } = await queue.getJobLogs(job.id!);
      expect(logs[0]).toMatch(/^account.created #1 of wh-dash, attempt \d+: HTTP 500, will retry$/);
    } finally {
      await queue.close();
    }
    answer = () => 200;
    const events = await feedOf(["wh-dash"]);
    await waitFor(() => events.every((e) => received.some((r) => r.id === e.id && r.sequence)), {
      what: "wh-dash delivered once answered",
      timeoutMs: 30_000,
    });
  });

  it("kill the delivery worker and wipe Redis mid-delivery: every event arrives, in order, signed", async () => {
    await workers?.close();
    workers = undefined;
    received.length = 0;
    // Slow answers, so that deliveries are in flight when the worker dies.
    answer = () => 200;
    const env = {
      DATABASE_URL: t.db.url,
      REDIS_URL,
      HOLDFAST_QUEUE_PREFIX: prefix,
      HOLDFAST_ADMIN_TOKEN: ADMIN,
      HOLDFAST_SERVICE_TOKEN: SERVICE,
    };
    let worker: WorkerProcess = await spawnWorker(env);
    try {
      const accounts = ["wh-k0", "wh-k1", "wh-k2", "wh-k3"];
      const writing = traffic(accounts, 10, "d4");
      await waitFor(() => received.length >= 10, {
        what: "deliveries under way",
        timeoutMs: 20_000,
      });
      worker.child.kill("SIGKILL");
      await worker.exited;
      const redis = new Redis(REDIS_URL);
      await deleteKeysUnder(redis, prefix).finally(() => redis.disconnect());
      await writing;
      worker = await spawnWorker(env);
      const events = await feedOf(accounts);
      await waitFor(() => events.every((e) => received.some((r) => r.id === e.id)), {
        what: "every event delivered after the kill and the wipe",
        timeoutMs: 30_000,
      });
      expectAllReceived(events, secret);
    } finally {
      // A worker left running would go on delivering this file's events after it ends.
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill("SIGTERM");
        await worker.exited;
      }
    }
  });

  it("an event still failing after HOLDFAST_WEBHOOK_RETRY_HOURS is given up, and the account's next one goes", async () => {
    const created = await admin("POST", "/v1/webhook-endpoints", {
      url: "http://127.0.0.1:9/nobody-listens",
      types: ["account.created", "account.credited"],
    });
    await fundedAccount(t.db.db, "wh-gone", 5);
    await dispatchEvents(t.db.db);
    const lane = { endpointId: created.json.id, bucket: bucketOf("wh-gone"), accountId: "wh-gone" };
    const options = { retryHours: 1, retryBaseMs: 1, timeoutMs: 1000 };
    await expect(deliverLane(t.db.db, lane, options)).rejects.toThrow(/attempt 1: /);
    // The first event has been failing for longer than the window.
    await t.db.sql`UPDATE webhook_deliveries SET created_at = now() - interval '2 hours',
                     next_attempt_at = now() WHERE account_id = 'wh-gone' AND sequence = 1`;
    await expect(deliverLane(t.db.db, lane, options)).rejects.toThrow(
      /account.credited #2 of wh-gone, attempt 1/,
    );
    const rows = await t.db.sql<{ sequence: number; status: string; attempts: number }[]>`
      SELECT sequence, status, attempts FROM webhook_deliveries
       WHERE endpoint_id = ${created.json.id} ORDER BY sequence`;
    expect(rows.map((r) => [r.sequence, r.status, r.attempts])).toEqual([
      [1, "failed", 2],
      [2, "pending", 1],
    ]);
    await admin("DELETE", `/v1/webhook-endpoints/${created.json.id}`);
  });

  it("no answer within the timeout is a failed attempt; the next waits 1 s, then 2 s (± 20 %)", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const created = await admin("POST", "/v1/webhook-endpoints", {
        url: `http://127.0.0.1:${port}/hangs`,
        types: ["account.created"],
      });
      await fundedAccount(t.db.db, "wh-slowpoke", 0);
      await dispatchEvents(t.db.db);
      const lane = {
        endpointId: created.json.id,
        bucket: bucketOf("wh-slowpoke"),
        accountId: "wh-slowpoke",
      };
      const options = { retryHours: 24, retryBaseMs: 1000, timeoutMs: 200 };
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 2; attempt++) {
        await expect(deliverLane(t.db.db, lane, options)).rejects.toThrow(
          new RegExp(`attempt ${attempt}: `),
        );
        const [row] = await t.db.sql<{ wait: number }[]>`
          SELECT extract(epoch FROM next_attempt_at - now())::float8 AS wait
            FROM webhook_deliveries WHERE endpoint_id = ${created.json.id}`;
        waits.push(row!.wait);
        await t.db.sql`UPDATE webhook_deliveries SET next_attempt_at = now()
                        WHERE endpoint_id = ${created.json.id}`;
      }
      expect(waits[0]).toBeGreaterThan(0.7);
      expect(waits[0]).toBeLessThan(1.2);
      expect(waits[1]).toBeGreaterThan(1.5);
      expect(waits[1]).toBeLessThan(2.4);
      const attempts = await admin("GET", `/v1/webhook-endpoints/${created.json.id}/deliveries`);
      expect(
        attempts.json.data.map((a: { statusCode: number | null; latencyMs: number }) => [
          a.statusCode,
          a.latencyMs >= 150,
        ]),
      ).toEqual([
        [null, true],
        [null, true],
      ]);
      await admin("DELETE", `/v1/webhook-endpoints/${created.json.id}`);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe("README's receiver example", () => {
  it("is, word for word, the signature check these tests and the chaos run use", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const helper = readFileSync(new URL("../helpers/signatures.ts", import.meta.url), "utf8");
    const code = helper.slice(helper.indexOf("import { createHmac"));
    expect(code.length).toBeGreaterThan(400);
    expect(readme).toContain(code.trim());
  });
});
