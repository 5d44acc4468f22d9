import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsPanel } from "../../src/http/admin/holds-panel.ts";
import { createApp } from "../../src/http/app.ts";
import { dashboard } from "../../src/http/dashboard.ts";
import { collectHoldGauges, registry } from "../../src/metrics.ts";
import type { Hold } from "../../src/reservations/hold.ts";
import { holdOutcomes } from "../../src/reservations/hold-outcomes.ts";
import { holdStats } from "../../src/reservations/hold-stats.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { expireHold, releaseHold } from "../../src/reservations/release-hold.ts";
import { settleHold } from "../../src/reservations/settle-hold.ts";
import { queuePauses } from "../../src/workers/paused-queues.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { QUEUE_NAMES } from "../../src/workers/queues.ts";
import { scheduleHold } from "../../src/workers/schedule-hold.ts";
import { ADMIN, SERVICE, testEnv } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder } from "../helpers/workers.ts";

const OPS = "test-ops-token-0123456789";
const env = testEnv();
let db: TestDatabase;
let redis: Redis;
let producer: Producer;
let stopGauges: () => void;
const logged: Record<string, unknown>[] = [];
const holds: Record<string, Hold> = {};

const logger = pino(
  { level: "info" },
  new Writable({
    write(chunk, _encoding, done) {
      logged.push(JSON.parse(String(chunk)));
      done();
    },
  }),
);

/** The app as `serve` builds it: panel, dashboards and queues wired in. */
function appWith(options: { strict?: boolean; opsToken?: string } = {}) {
  const queues = producer.queues.all;
  return createApp(
    {
      db: db.db,
      redis,
      env: { ...env, HOLDFAST_READY_STRICT: options.strict ?? false },
      logger,
      queues,
    },
    [holdsPanel(queues, { fulfilment: true }), dashboard(queues, { opsToken: options.opsToken })],
  );
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

async function call(
  app: ReturnType<typeof appWith>,
  method: string,
  path: string,
  authorization?: string,
) {
  const res = await app.request(path, {
    method,
    headers: authorization ? { authorization } : {},
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: safeJson(text) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const panel = (path = "/admin/holds") => call(appWith(), "GET", path, basic("admin", ADMIN));

/** The <dd> shown under a figure's label. */
const figure = (html: string, label: string) =>
  new RegExp(`<dt>${label}</dt><dd>([^<]*)</dd>`).exec(html)?.[1];

beforeAll(async () => {
  db = await createTestDatabase();
  redis = new Redis(REDIS_URL);
  producer = await connectProducer(REDIS_URL, env.HOLDFAST_QUEUE_PREFIX);
  await fundedAccount(db.db, "panel-a", 1000);
  await fundedAccount(db.db, "panel-b", 100);
  const place = async (name: string, amount: number, extra: object = {}) => {
    holds[name] = (await placeHold(db.db, { accountId: "panel-a", amount, ...extra })).hold;
    await scheduleHold(producer.queues, holds[name]!, { fulfilment: true });
  };
  // Two holds with 1 s deadlines, placed first so they are the oldest: one is expired, one
  // left pending past its deadline (overdue).
  await place("overdue", 40, { expiresInSeconds: 1, orderId: "ord-overdue" });
  await place("toExpire", 7, { expiresInSeconds: 1 });
  await place("in15m", 10, { orderId: "ord-15m" });
  await place("in2m", 20, { expiresInSeconds: 120 });
  await place("in2h", 30, { expiresInSeconds: 7200 });
  await place("settled", 50);
  await place("outOfStock", 8);
  await place("noReason", 9);
  holds.other = (await placeHold(db.db, { accountId: "panel-b", amount: 5 })).hold;
  await settleHold(db.db, { holdId: holds.settled!.id, amount: 5 });
  await releaseHold(db.db, { holdId: holds.outOfStock!.id, reason: "out_of_stock" });
  await releaseHold(db.db, { holdId: holds.noReason!.id });
  await new Promise((r) => setTimeout(r, 1100));
  expect((await expireHold(db.db, holds.toExpire!.id)).kind).toBe("expired");
  stopGauges = collectHoldGauges({
    stats: () => holdStats(db.db),
    pauses: () => queuePauses(producer.queues.all),
  });
});

afterAll(async () => {
  stopGauges?.();
  await producer?.close();
  await deleteKeysUnder(redis, env.HOLDFAST_QUEUE_PREFIX);
  redis?.disconnect();
  if (db) await expectLedgerConsistent(db.db, 3_600_000);
  await db?.drop();
});

describe("the holds panel's figures (from Postgres)", () => {
  it("holdStats: pending count, coins held, overdue and expiring soon", async () => {
    const stats = await holdStats(db.db);
    // panel-a: overdue 40, in15m 10, in2m 20, in2h 30; panel-b: 5.
    expect(stats).toEqual({
      pending: 5,
      coinsHeld: 105n,
      overdue: 1,
      expiringIn5m: 1,
      expiringIn60m: 2 + 1,
    });
  });

  it("holdOutcomes: settles, releases by reason and expiries in the last hour and day", async () => {
    const window = {
      settled: 1,
      expired: 1,
      releasedByReason: { out_of_stock: 1, "(none)": 1 },
    };
    expect(await holdOutcomes(db.db)).toEqual({ lastHour: window, lastDay: window });
  });

  it("the page shows the same figures and outcomes", async () => {
    const r = await panel();
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/html/);
    expect(figure(r.text, "Pending holds")).toBe("5");
    expect(figure(r.text, "Coins held")).toBe("105");
    expect(figure(r.text, "Overdue")).toBe("1");
    expect(figure(r.text, "Expiring within 5 min")).toBe("1");
    expect(figure(r.text, "Expiring within 60 min")).toBe("3");
    const outcomes = /<table id="outcomes">.*?<\/table>/s.exec(r.text)?.[0] ?? "";
    const row = (label: string) =>
      new RegExp(`<th scope="row">${label}</th><td class="n">(\\d+)</td><td class="n">(\\d+)</td>`)
        .exec(outcomes)
        ?.slice(1);
    expect(row("settled")).toEqual(["1", "1"]);
    expect(row("expired")).toEqual(["1", "1"]);
    expect(row("released: out_of_stock")).toEqual(["1", "1"]);
    expect(row("released: no reason given")).toEqual(["1", "1"]);
  });

  it("the oldest pending holds, oldest first, each with account, order, overdue mark and job links", async () => {
    const r = await panel();
    const table = /<table id="oldest">.*?<\/table>/s.exec(r.text)?.[0] ?? "";
    const ids = [...table.matchAll(/<code>([0-9a-f-]{36})<\/code>/g)].map((m) => m[1]);
    expect(ids).toEqual(
      ["overdue", "in15m", "in2m", "in2h", "other"].map((name) => holds[name]!.id),
    );
    const overdueRow = /<tr><td><code>[^<]*<\/code><\/td>.*?<\/tr>/s.exec(table)?.[0] ?? "";
    expect(overdueRow).toContain("<td>panel-a</td>");
    expect(overdueRow).toContain("<td>ord-overdue</td>");
    expect(overdueRow).toMatch(/class="overdue">overdue by \d+s/);
    const id = holds.overdue!.id;
    expect(overdueRow).toContain(`href="/admin/queues/queue/holds-fulfil/fulfil-${id}"`);
    expect(overdueRow).toContain(`href="/admin/queues/queue/holds-expire/expire-${id}"`);
  });

  it("the job link opens that job in the dashboard", async () => {
    const id = holds.in15m!.id;
    const app = appWith();
    const page = await call(
      app,
      "GET",
      `/admin/queues/queue/holds-fulfil/fulfil-${id}`,
      basic("admin", ADMIN),
    );
    expect(page.status).toBe(200);
    const job = await call(
      app,
      "GET",
      `/admin/queues/api/queues/holds-fulfil/fulfil-${id}`,
      basic("admin", ADMIN),
    );
    expect(job.status).toBe(200);
    expect((job.json as { job: { data: { holdId: string } } }).job.data.holdId).toBe(id);
  });
});

describe("searching the panel", () => {
  const resultIds = (html: string) => {
    const table = /<table id="search-results">.*?<\/table>/s.exec(html)?.[0] ?? "";
    return [...table.matchAll(/<code>([0-9a-f-]{36})<\/code>/g)].map((m) => m[1]);
  };

  it("by account id: that account's holds in every state, newest first", async () => {
    const r = await panel("/admin/holds?account=panel-a");
    expect(r.status).toBe(200);
    const names = [
      "noReason",
      "outOfStock",
      "settled",
      "in2h",
      "in2m",
      "in15m",
      "toExpire",
      "overdue",
    ];
    expect(resultIds(r.text)).toEqual(names.map((n) => holds[n]!.id));
    expect(r.text).toContain('value="panel-a"');
    expect(r.text).toContain("released (out_of_stock)");
  });

  it("by order id", async () => {
    const r = await panel("/admin/holds?order=ord-15m");
    expect(resultIds(r.text)).toEqual([holds.in15m!.id]);
  });

  it("nothing found says so; both fields at once is a 400", async () => {
    const none = await panel("/admin/holds?account=nobody");
    expect(none.text).toContain("No holds for account nobody.");
    const both = await panel("/admin/holds?account=panel-a&order=ord-15m");
    expect(both.status).toBe(400);
    expect((both.json as { code: string }).code).toBe("invalid_request");
  });

  it("a search term is escaped in the page", async () => {
    const r = await panel(`/admin/holds?order=${encodeURIComponent('<script>x</script>"')}`);
    expect(r.text).not.toContain("<script>x");
    expect(r.text).toContain("&lt;script&gt;x&lt;/script&gt;");
  });
});

describe("the panel's guard and headers", () => {
  it("the admin only: 401 with a Basic challenge, 403 for the service token", async () => {
    const app = appWith();
    const anonymous = await call(app, "GET", "/admin/holds");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic realm="holdfast"/);
    expect((await call(app, "GET", "/admin/holds", `Bearer ${SERVICE}`)).status).toBe(403);
    expect((await call(app, "GET", "/admin/holds", basic("admin", SERVICE))).status).toBe(403);
    expect((await call(app, "GET", "/admin/holds", `Bearer ${ADMIN}`)).status).toBe(200);
  });

  it("a CSP with frame-ancestors 'none' and no script; the one style element carries the nonce", async () => {
    const r = await panel();
    const csp = r.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("script-src");
    const nonce = /style-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(r.text).toContain(`<style nonce="${nonce}">`);
    expect(r.text).not.toMatch(/<script|https?:\/\/(?!127\.0\.0\.1)/);
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("the dashboard's page has a CSP and no link to Google Fonts", async () => {
    const r = await call(appWith(), "GET", "/admin/queues", basic("admin", ADMIN));
    expect(r.status).toBe(200);
    expect(r.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(r.text).not.toContain("fonts.googleapis.com");
    expect(r.text).not.toMatch(/(href|src)="https?:/);
  });
});

describe("a paused expiry: banner, gauges and /readyz", () => {
  it("gauges: pending, coins held, overdue and each queue's paused flag", async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/^holdfast_holds_pending 5$/m);
    expect(text).toMatch(/^holdfast_coins_held 105$/m);
    expect(text).toMatch(/^holdfast_holds_overdue 1$/m);
    for (const queue of Object.values(QUEUE_NAMES))
      expect(text).toContain(`holdfast_queue_paused{queue="${queue}"} 0`);
  });

  it("pausing holds-expire: banner, gauge 1, /readyz degraded (200), 503 when strict", async () => {
    const app = appWith();
    expect((await call(app, "GET", "/readyz")).json).toEqual({
      status: "ok",
      postgres: "ok",
      redis: "ok",
    });
    expect((await panel()).text).not.toContain("paused-banner");
    await producer.queues.expire.pause();
    try {
      const page = await panel();
      expect(page.text).toMatch(/id="paused-banner">Expiry is paused: holds-expire\./);
      const metrics = await call(app, "GET", "/metrics");
      expect(metrics.text).toContain('holdfast_queue_paused{queue="holds-expire"} 1');
      expect(metrics.text).toContain('holdfast_queue_paused{queue="holds-sweep"} 0');

      const ready = await call(app, "GET", "/readyz");
      expect(ready.status).toBe(200);
      expect(ready.json).toEqual({
        status: "degraded",
        postgres: "ok",
        redis: "ok",
        paused: ["holds-expire"],
      });
      const strict = await call(appWith({ strict: true }), "GET", "/readyz");
      expect(strict.status).toBe(503);
      expect(strict.json).toMatchObject({ code: "unavailable", paused: ["holds-expire"] });
    } finally {
      await producer.queues.expire.resume();
    }
    expect((await call(appWith({ strict: true }), "GET", "/readyz")).status).toBe(200);
  });

  it("a paused sweep queue degrades /readyz too; a paused fulfil queue does not", async () => {
    await producer.queues.sweep.pause();
    await producer.queues.fulfil.pause();
    try {
      const ready = await call(appWith(), "GET", "/readyz");
      expect(ready.json).toMatchObject({ status: "degraded", paused: ["holds-sweep"] });
      expect((await panel()).text).toContain("Expiry is paused: holds-sweep.");
    } finally {
      await producer.queues.sweep.resume();
      await producer.queues.fulfil.resume();
    }
  });
});

describe("dashboard write actions", () => {
  const jobPath = (base: string, name: string) =>
    `${base}/api/queues/holds-fulfil/fulfil-${holds[name]!.id}`;

  it("the admin's dashboard is read-only: a retry through its JSON API is refused and changes nothing", async () => {
    const app = appWith({ opsToken: OPS });
    const queues = await call(app, "GET", "/admin/queues/api/queues", basic("admin", ADMIN));
    for (const q of (queues.json as { queues: { readOnlyMode: boolean }[] }).queues)
      expect(q.readOnlyMode).toBe(true);
    const job = producer.queues.fulfil;
    const before = await job.getJob(`fulfil-${holds.in2h!.id}`);
    for (const [method, path] of [
      ["PUT", `${jobPath("/admin/queues", "in2h")}/retry`],
      ["PUT", "/admin/queues/api/queues/holds-fulfil/retry/completed"],
      ["PUT", "/admin/queues/api/queues/holds-expire/pause"],
      ["PUT", "/admin/queues/api/queues/pause"],
      ["POST", "/admin/queues/api/queues/holds-fulfil/add"],
      ["PATCH", `${jobPath("/admin/queues", "in2h")}/update-data`],
      ["PUT", "/admin/queues/api/queues/holds-fulfil/obliterate"],
    ] as const) {
      const r = await call(app, method, path, basic("admin", ADMIN));
      expect(r.status, `${method} ${path}`).toBe(403);
      expect((r.json as { code: string }).code).toBe("forbidden");
    }
    expect(await producer.queues.expire.isPaused()).toBe(false);
    const after = await job.getJob(`fulfil-${holds.in2h!.id}`);
    expect(after?.data).toEqual(before?.data);
    expect(await after?.getState()).toBe(await before?.getState());
  });

  it("without HOLDFAST_OPS_TOKEN there is no writable dashboard at all", async () => {
    const r = await call(appWith(), "GET", "/admin/queues-ops", basic("ops", ADMIN));
    expect(r.status).toBe(404);
  });

  it("the ops dashboard takes Basic <name>:<ops token>; the admin token is not enough", async () => {
    const app = appWith({ opsToken: OPS });
    const refused = await call(app, "GET", "/admin/queues-ops/api/queues", basic("admin", ADMIN));
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toMatch(/^Basic realm="holdfast-ops"/);
    expect((await call(app, "GET", "/admin/queues-ops/api/queues", `Bearer ${OPS}`)).status).toBe(
      401,
    );
    const ok = await call(app, "GET", "/admin/queues-ops/api/queues", basic("jane", OPS));
    expect(ok.status).toBe(200);
    for (const q of (ok.json as { queues: { readOnlyMode: boolean }[] }).queues)
      expect(q.readOnlyMode).toBe(false);
  });

  it("an ops write action works and is logged with who did it", async () => {
    const app = appWith({ opsToken: OPS });
    logged.length = 0;
    const paused = await call(
      app,
      "PUT",
      "/admin/queues-ops/api/queues/holds-expire/pause",
      basic("jane.doe", OPS),
    );
    expect(paused.status).toBe(200);
    try {
      expect(await producer.queues.expire.isPaused()).toBe(true);
      expect(logged).toContainEqual(
        expect.objectContaining({
          level: 40,
          audit: "dashboard",
          operator: "jane.doe",
          method: "PUT",
          path: "/admin/queues-ops/api/queues/holds-expire/pause",
          status: 200,
        }),
      );
    } finally {
      await producer.queues.expire.resume();
    }
  });

  it("even with the ops token, a completed job is not retried", async () => {
    const app = appWith({ opsToken: OPS });
    const { Worker } = await import("bullmq");
    const fulfil = producer.queues.fulfil;
    const jobId = `fulfil-${holds.in2h!.id}`;
    // A worker that records an outcome for this one job, as the fulfil worker would.
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const worker = new Worker(
      QUEUE_NAMES.fulfil,
      async (job) => (job.id === jobId ? { outcome: "settled", amount: 30 } : undefined),
      { connection, prefix: env.HOLDFAST_QUEUE_PREFIX },
    );
    try {
      for (let i = 0; i < 100 && (await fulfil.getJobState(jobId)) !== "completed"; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await fulfil.getJobState(jobId)).toBe("completed");
    } finally {
      await worker.close();
      connection.disconnect();
    }
    for (const path of [
      `/admin/queues-ops/api/queues/holds-fulfil/${jobId}/retry`,
      "/admin/queues-ops/api/queues/holds-fulfil/retry/completed",
    ]) {
      const r = await call(app, "PUT", path, basic("jane", OPS));
      expect(r.status, path).toBe(403);
    }
    const job = await fulfil.getJob(jobId);
    expect(await job?.getState()).toBe("completed");
    expect(job?.returnvalue).toEqual({ outcome: "settled", amount: 30 });
  });
});
