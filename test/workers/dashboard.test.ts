import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboard } from "../../src/http/dashboard.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { QUEUE_NAMES } from "../../src/workers/queues.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder, testPrefix, waitFor } from "../helpers/workers.ts";

const prefix = testPrefix();
let producer: Producer;
let t: TestApp;

beforeAll(async () => {
  producer = await connectProducer(REDIS_URL, prefix);
  t = await createTestApp({ mounts: [dashboard(producer.queues.all)] });
});

afterAll(async () => {
  await producer?.close();
  const redis = new Redis(REDIS_URL);
  await deleteKeysUnder(redis, prefix);
  redis.disconnect();
  await t?.close();
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const get = (path: string, authorization?: string) =>
  t.call("GET", path, { token: null, headers: authorization ? { authorization } : {} });

describe("/admin/queues (bull-board)", () => {
  it("no credentials: 401 with a Basic challenge, so a browser prompts", async () => {
    const r = await get("/admin/queues");
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toMatch(/^Basic realm="holdfast"/);
    expect(r.json.code).toBe("unauthorized");
  });

  it("the service token is refused (403), as Bearer or as Basic password", async () => {
    for (const authorization of [`Bearer ${SERVICE}`, basic("admin", SERVICE)]) {
      const r = await get("/admin/queues", authorization);
      expect(r.status).toBe(403);
      expect(r.json.code).toBe("forbidden");
    }
  });

  it("a wrong Basic user or password is 401", async () => {
    expect((await get("/admin/queues", basic("root", ADMIN))).status).toBe(401);
    expect((await get("/admin/queues", basic("admin", "nope"))).status).toBe(401);
  });

  it("the admin token, as Bearer or as Basic admin:<token>, gets the dashboard", async () => {
    for (const authorization of [`Bearer ${ADMIN}`, basic("admin", ADMIN)]) {
      const r = await get("/admin/queues", authorization);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/^text\/html/);
      expect(r.text).toContain('<base href="/admin/queues/"');
    }
  });

  it("the page's static files and API calls are guarded the same way", async () => {
    const page = await get("/admin/queues", basic("admin", ADMIN));
    const relative = /src="(static\/js\/[^"]+\.js)"/.exec(page.text)?.[1];
    expect(relative).toBeDefined();
    const asset = `/admin/queues/${relative}`;
    expect((await get(asset)).status).toBe(401);
    const js = await get(asset, basic("admin", ADMIN));
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);

    expect((await get("/admin/queues/api/queues")).status).toBe(401);
    expect((await get("/admin/queues/api/queues", `Bearer ${SERVICE}`)).status).toBe(403);
    const api = await get("/admin/queues/api/queues", basic("admin", ADMIN));
    expect(api.status).toBe(200);
    const names = (api.json.queues as { name: string }[]).map((q) => q.name).sort();
    expect(names).toEqual(["holds-expire", "holds-fulfil", "holds-sweep", "webhooks"]);
  });

  it("a refused purchase's fulfil job says REFUSED in its title; a settled one does not", async () => {
    const fulfil = producer.queues.fulfil;
    // A worker that returns what the fulfil processor returns for each case.
    const worker = new Worker(QUEUE_NAMES.fulfil, async (job) => job.data.result, {
      connection: new Redis(REDIS_URL, { maxRetriesPerRequest: null }),
      prefix,
    });
    const refused = await fulfil.add("fulfil · bob · 75 · order ok-1002", {
      holdId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50",
      result: { outcome: "released", reason: "out of stock" },
    } as never);
    const settled = await fulfil.add("fulfil · bob · 20", {
      holdId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f51",
      result: { outcome: "settled", settledAmount: 20 },
    } as never);
    try {
      await waitFor(async () =>
        (await refused.isCompleted()) && (await settled.isCompleted()) ? true : undefined,
      );
    } finally {
      await worker.close();
      await worker.disconnect();
    }
    const r = await get(
      "/admin/queues/api/queues?activeQueue=holds-fulfil&status=completed&page=1",
      `Bearer ${ADMIN}`,
    );
    const jobs = r.json.queues.find((q: { name: string }) => q.name === "holds-fulfil").jobs;
    const titles = jobs.map((j: { name: string }) => j.name).sort();
    expect(titles).toEqual([
      "fulfil · bob · 20",
      "fulfil · bob · 75 · order ok-1002 · REFUSED: out of stock",
    ]);
  });
});
