import type { Redis } from "ioredis";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboard } from "../../src/http/dashboard.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis } from "../../src/process/connections.ts";
import { type RunningServer, startServer } from "../../src/process/server.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { scheduleHold } from "../../src/workers/schedule-hold.ts";
import { ADMIN, testEnv } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder } from "../helpers/workers.ts";

const SCREENSHOT = "/tmp/dashboard.png";

let db: TestDatabase;
let redis: Redis;
let producer: Producer;
let server: RunningServer;
let browser: Browser | undefined;
const env = testEnv();

beforeAll(async () => {
  db = await createTestDatabase();
  redis = await connectRedis(REDIS_URL);
  producer = await connectProducer(REDIS_URL, env.HOLDFAST_QUEUE_PREFIX);
  server = await startServer({ db: db.db, redis, env, logger: createLogger("silent") }, [
    dashboard(producer.queues.all),
  ]);
  // Something to show: a pending hold's delayed expire job and its fulfil job.
  await fundedAccount(db.db, "browser-1", 50);
  const { hold } = await placeHold(db.db, { accountId: "browser-1", amount: 5 });
  await scheduleHold(producer.queues, hold, { fulfilment: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await producer?.close();
  await deleteKeysUnder(redis, env.HOLDFAST_QUEUE_PREFIX);
  redis?.disconnect();
  await expectLedgerConsistent(db.db);
  await db?.drop();
});

describe("the dashboard in a real browser", () => {
  it("opens /admin/queues with HTTP Basic admin:<token> and lists the three hold queues", async () => {
    // No skip when chromium is missing: launch throws and the test fails.
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const base = `http://127.0.0.1:${server.port}`;

    const anonymous = await browser.newContext();
    const refused = await anonymous.request.get(`${base}/admin/queues`);
    expect(refused.status()).toBe(401);
    expect(refused.headers()["www-authenticate"]).toMatch(/^Basic /);
    await anonymous.close();

    const context = await browser.newContext({
      httpCredentials: { username: "admin", password: ADMIN },
      viewport: { width: 1280, height: 800 },
    });
    const page = await context.newPage();
    const failed: string[] = [];
    page.on("response", (r) => {
      if (r.url().startsWith(base) && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
    const response = await page.goto(`${base}/admin/queues`, { waitUntil: "load" });
    expect(response?.status()).toBe(200);
    for (const name of ["holds-expire", "holds-fulfil", "holds-sweep"])
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 20_000 });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // Every static file and API call the UI made under /admin/queues passed the guard.
    expect(failed).toEqual([]);
    await context.close();
  }, 60_000);
});
