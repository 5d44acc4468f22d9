import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsPanel } from "../../src/http/admin/holds-panel.ts";
import { dashboard } from "../../src/http/dashboard.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis } from "../../src/process/connections.ts";
import { type RunningServer, startServer } from "../../src/process/server.ts";
import type { Hold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { releaseHold } from "../../src/reservations/release-hold.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { scheduleHold } from "../../src/workers/schedule-hold.ts";
import { ADMIN, testEnv } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder } from "../helpers/workers.ts";

const AXE_SOURCE = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);
const SCREENSHOTS = { panel: "/tmp/holds-panel.png", search: "/tmp/holds-panel-search.png" };

let db: TestDatabase;
let redis: Redis;
let producer: Producer;
let server: RunningServer;
let browser: Browser;
let base: string;
const env = testEnv();
const holds: Hold[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  redis = await connectRedis(REDIS_URL);
  producer = await connectProducer(REDIS_URL, env.HOLDFAST_QUEUE_PREFIX);
  const queues = producer.queues.all;
  server = await startServer({ db: db.db, redis, env, logger: createLogger("silent"), queues }, [
    dashboard(queues),
    holdsPanel(queues, { fulfilment: true }),
  ]);
  base = `http://127.0.0.1:${server.port}`;
  await fundedAccount(db.db, "browser-alice", 100);
  await fundedAccount(db.db, "browser-bob", 100);
  for (const [accountId, amount, orderId] of [
    ["browser-alice", 20, "order-a1"],
    ["browser-bob", 30, "order-b1"],
    ["browser-bob", 15, "order-b2"],
  ] as const) {
    const { hold } = await placeHold(db.db, { accountId, amount, orderId });
    await scheduleHold(producer.queues, hold, { fulfilment: true });
    holds.push(hold);
  }
  await releaseHold(db.db, { holdId: holds[2]!.id, reason: "out_of_stock" });
  // No skip when chromium is missing: launch throws and the suite fails.
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
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await producer?.close();
  await deleteKeysUnder(redis, env.HOLDFAST_QUEUE_PREFIX);
  redis?.disconnect();
  await expectLedgerConsistent(db.db);
  await db?.drop();
});

const adminContext = (options: { bypassCSP?: boolean } = {}) =>
  browser.newContext({
    httpCredentials: { username: "admin", password: ADMIN },
    viewport: { width: 1280, height: 900 },
    ...options,
  });

/** Records what a page must not do: log an error, throw, or ask another host for anything. */
function watch(page: Page) {
  const problems = { console: [] as string[], external: [] as string[], failed: [] as string[] };
  page.on("console", (m) => {
    if (m.type() === "error") problems.console.push(m.text());
  });
  page.on("pageerror", (e) => problems.console.push(String(e)));
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.external.push(r.url());
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.failed.push(`${r.status()} ${r.url()}`);
  });
  return problems;
}

/** axe-core's serious and critical violations on the page, as "rule: target" lines. */
async function axeViolations(page: Page, disabledRules: string[] = []): Promise<string[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  const violations = await page.evaluate(async (disabled) => {
    type Violation = { id: string; impact: string; nodes: { target: string[] }[] };
    type Axe = { run: (...args: unknown[]) => Promise<{ violations: Violation[] }> };
    // Runs in the page; the project's lib has no DOM types, hence globalThis.
    const win = globalThis as unknown as { axe: Axe; document: unknown };
    const rules = Object.fromEntries(disabled.map((id) => [id, { enabled: false }]));
    const result = await win.axe.run(win.document, { resultTypes: ["violations"], rules });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")}`));
  }, disabledRules);
  return violations;
}

async function openDashboard(context: BrowserContext, path = "/admin/queues") {
  const page = await context.newPage();
  const problems = watch(page);
  const response = await page.goto(`${base}${path}`, { waitUntil: "load" });
  expect(response?.status()).toBe(200);
  return { page, problems };
}

describe("the holds panel in a real browser", () => {
  it("renders the figures and the oldest pending holds, with no console error and no external request", async () => {
    const context = await adminContext();
    const page = await context.newPage();
    const problems = watch(page);
    const response = await page.goto(`${base}/admin/holds`, { waitUntil: "load" });
    expect(response?.status()).toBe(200);
    await page.getByRole("heading", { name: "holdfast · holds" }).waitFor();
    const pending = page.locator("dt", { hasText: "Pending holds" }).locator("+ dd");
    expect(await pending.textContent()).toBe("2");
    expect(await page.locator("dt", { hasText: "Coins held" }).locator("+ dd").textContent()).toBe(
      "50",
    );
    const oldest = page.locator("#oldest tbody tr");
    expect(await oldest.count()).toBe(2);
    expect(await oldest.first().textContent()).toContain("browser-alice");
    await page.screenshot({ path: SCREENSHOTS.panel, fullPage: true });
    expect(problems).toEqual({ console: [], external: [], failed: [] });
    await context.close();
  }, 60_000);

  it("search by account id shows that account's holds, in every state", async () => {
    const context = await adminContext();
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${base}/admin/holds`, { waitUntil: "load" });
    await page.getByLabel("Account id").fill("browser-bob");
    await Promise.all([
      page.waitForURL(/\/admin\/holds\?account=browser-bob/),
      page.getByRole("button", { name: "Search" }).click(),
    ]);
    const rows = page.locator("#search-results tbody tr");
    expect(await rows.count()).toBe(2);
    const text = (await rows.allTextContents()).join("\n");
    expect(text).toContain("order-b1");
    expect(text).toContain("released (out_of_stock)");
    expect(text).not.toContain("browser-alice");
    await page.screenshot({ path: SCREENSHOTS.search, fullPage: true });
    expect(problems).toEqual({ console: [], external: [], failed: [] });
    await context.close();
  }, 60_000);

  it("a job link opens the hold's fulfil job in the dashboard", async () => {
    const context = await adminContext();
    const page = await context.newPage();
    await page.goto(`${base}/admin/holds`, { waitUntil: "load" });
    await page.getByRole("link", { name: `fulfil job of hold ${holds[0]!.id}` }).click();
    await page.waitForURL(new RegExp(`/admin/queues/queue/holds-fulfil/fulfil-${holds[0]!.id}$`));
    await page.getByText(`fulfil-${holds[0]!.id}`).first().waitFor({ timeout: 20_000 });
    await context.close();
  }, 60_000);

  it("axe-core finds no serious or critical violation", async () => {
    // bypassCSP lets the test inject axe-core: the panel's CSP allows no script at all.
    const context = await adminContext({ bypassCSP: true });
    const page = await context.newPage();
    await page.goto(`${base}/admin/holds?account=browser-bob`, { waitUntil: "load" });
    expect(await axeViolations(page)).toEqual([]);
    await context.close();
  }, 60_000);
});

describe("the dashboard in a real browser", () => {
  it("renders with no console error and no external request (no Google Fonts)", async () => {
    const context = await adminContext();
    const { page, problems } = await openDashboard(context);
    for (const name of ["holds-expire", "holds-fulfil", "holds-sweep"])
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 20_000 });
    // Let the UI's first polls of its JSON API run.
    await page.waitForLoadState("networkidle");
    expect(problems).toEqual({ console: [], external: [], failed: [] });
    await context.close();
  }, 60_000);

  it("read-only: a job page offers no Retry, and a retry through the page's session is refused", async () => {
    const context = await adminContext();
    const jobId = `fulfil-${holds[0]!.id}`;
    const { page } = await openDashboard(context, `/admin/queues/queue/holds-fulfil/${jobId}`);
    await page.getByText(jobId).first().waitFor({ timeout: 20_000 });
    await page.waitForLoadState("networkidle");
    expect(await page.getByRole("button", { name: /retry/i }).count()).toBe(0);
    const retry = await page.request.put(
      `${base}/admin/queues/api/queues/holds-fulfil/${jobId}/retry`,
    );
    expect(retry.status()).toBe(403);
    expect((await retry.json()).code).toBe("forbidden");
    await context.close();
  }, 60_000);

  it("axe-core finds no serious or critical violation, with holdfast's repairs of bull-board's markup", async () => {
    const context = await adminContext({ bypassCSP: true });
    const { page } = await openDashboard(context, "/admin/queues/queue/holds-fulfil");
    await page.getByText("holds-fulfil", { exact: true }).first().waitFor({ timeout: 20_000 });
    await page.waitForLoadState("networkidle");
    // The repairs run as the page draws: wait until the job cards' copy buttons have names.
    await page.waitForFunction(() => {
      const d = (globalThis as unknown as { document: { querySelectorAll(s: string): unknown[] } })
        .document;
      return (
        d.querySelectorAll("button:not([aria-label])").length < d.querySelectorAll("button").length
      );
    });
    expect(await axeViolations(page)).toEqual([]);
    await context.close();
  }, 60_000);
});
