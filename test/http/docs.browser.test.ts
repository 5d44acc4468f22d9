import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCS_ASSETS } from "../../src/http/docs.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis, type RedisClient } from "../../src/process/connections.ts";
import { type RunningServer, startServer } from "../../src/process/server.ts";
import { createTestApp, type TestApp, testEnv } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { REDIS_URL } from "../helpers/urls.ts";

let t: TestApp;
let db: TestDatabase;
let redis: RedisClient;
let server: RunningServer;
let browser: Browser | undefined;

beforeAll(async () => {
  t = await createTestApp();
  db = await createTestDatabase();
  redis = await connectRedis(REDIS_URL);
  server = await startServer({ db: db.db, redis, env: testEnv(), logger: createLogger("silent") });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  redis?.disconnect();
  await db?.drop();
  await t?.close();
});

describe("/docs: swagger-ui from the pinned swagger-ui-dist package", () => {
  it("serves the page and its assets from this host, with a CSP that allows nothing else", async () => {
    const page = await t.call("GET", "/docs", { token: null });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.text).not.toMatch(/https?:\/\//);
    const version = (await import("swagger-ui-dist/package.json", { with: { type: "json" } }))
      .default.version;
    expect(DOCS_ASSETS).toBe(`/docs/assets/${version}`);
    for (const [file, type] of [
      ["swagger-ui-bundle.js", /^text\/javascript/],
      ["swagger-ui.css", /^text\/css/],
    ] as const) {
      expect(page.text).toContain(`${DOCS_ASSETS}/${file}`);
      const asset = await t.call("GET", `${DOCS_ASSETS}/${file}`, { token: null });
      expect([asset.status, asset.headers.get("content-type")]).toEqual([
        200,
        expect.stringMatching(type),
      ]);
      expect(asset.headers.get("cache-control")).toContain("immutable");
    }
    const stray = await t.call("GET", `${DOCS_ASSETS}/constructor`, { token: null });
    expect(stray.status).toBe(404);
  });

  it("renders every operation in headless Chromium with every other host unreachable", async () => {
    // No skip when chromium is missing: launch throws and the test fails.
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    const base = `http://127.0.0.1:${server.port}`;
    const context = await browser.newContext();
    const outside: string[] = [];
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(`${base}/`)) return route.continue();
      outside.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(e.message));
    const response = await page.goto(`${base}/docs`, { waitUntil: "load" });
    expect(response?.status()).toBe(200);
    const document = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.values(document.paths).reduce((n, p) => n + Object.keys(p).length, 0);
    await page
      .locator(".opblock")
      .nth(operations - 1)
      .waitFor({ timeout: 20_000 });
    expect(await page.locator(".opblock").count()).toBe(operations);
    await page.getByText("POST/v1/purchases", { exact: false }).first().waitFor();
    expect(outside).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);
});
