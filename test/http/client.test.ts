import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTypes, servedDocument, TYPES_FILE } from "../../scripts/openapi-document.ts";
import { createHoldfastClient, type HoldfastClient } from "../../src/client/index.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis, type RedisClient } from "../../src/process/connections.ts";
import { type RunningServer, startServer } from "../../src/process/server.ts";
import { ADMIN, SERVICE, testEnv } from "../helpers/app.ts";
import { contractFetch } from "../helpers/contract.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";

let db: TestDatabase;
let redis: RedisClient;
let server: RunningServer;
let service: HoldfastClient;
let admin: HoldfastClient;

beforeAll(async () => {
  db = await createTestDatabase();
  redis = await connectRedis(REDIS_URL);
  server = await startServer({ db: db.db, redis, env: testEnv(), logger: createLogger("silent") });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  service = createHoldfastClient({ baseUrl, token: SERVICE, fetch: contractFetch });
  admin = createHoldfastClient({ baseUrl, token: ADMIN, fetch: contractFetch });
});
afterAll(async () => {
  await server?.close();
  redis?.disconnect();
  await expectLedgerConsistent(db.db);
  await db?.drop();
});

describe("the typed client (openapi-typescript + openapi-fetch)", () => {
  it(`${TYPES_FILE} is what the served document generates (npm run openapi:types)`, async () => {
    expect(readFileSync(TYPES_FILE, "utf8")).toBe(await generateTypes(await servedDocument()));
  });

  it("walks the README's quick start against a real server: account, credit, purchase, settle, release, balance", async () => {
    const opened = await service.POST("/v1/accounts", { body: { id: "qs-alice" } });
    expect(opened.response.status).toBe(201);
    expect(opened.data).toMatchObject({ id: "qs-alice", settled: 0, held: 0, metadata: null });

    const credited = await admin.POST("/v1/accounts/{id}/credits", {
      params: { path: { id: "qs-alice" }, header: { "idempotency-key": "qs-grant-1" } },
      body: { amount: 50, reason: "welcome bonus" },
    });
    expect(credited.data?.account).toMatchObject({ settled: 50, held: 0, available: 50 });

    const bought = await service.POST("/v1/purchases", {
      params: { header: { "idempotency-key": "qs-order-42" } },
      body: { accountId: "qs-alice", amount: 20, orderId: "42" },
    });
    expect(bought.response.status).toBe(201);
    const hold = bought.data!.hold;
    expect(hold).toMatchObject({ status: "pending", amount: 20, settledAmount: null });
    expect(bought.data!.account).toMatchObject({ settled: 50, held: 20, available: 30 });

    const settled = await service.POST("/v1/holds/{id}/settle", {
      params: { path: { id: hold.id } },
    });
    expect(settled.data).toMatchObject({ status: "settled", settledAmount: 20 });

    const second = await service.POST("/v1/purchases", {
      params: { header: { "idempotency-key": "qs-order-43" } },
      body: { accountId: "qs-alice", amount: 40, orderId: "43" },
    });
    expect(second.error).toMatchObject({ status: 422, code: "insufficient_funds" });
    const third = await service.POST("/v1/purchases", {
      params: { header: { "idempotency-key": "qs-order-44" } },
      body: { accountId: "qs-alice", amount: 10, orderId: "44" },
    });
    const released = await service.POST("/v1/holds/{id}/release", {
      params: { path: { id: third.data!.hold.id } },
      body: { reason: "out of stock" },
    });
    expect(released.data).toMatchObject({ status: "released", reason: "out of stock" });

    const replay = await service.POST("/v1/purchases", {
      params: { header: { "idempotency-key": "qs-order-42" } },
      body: { accountId: "qs-alice", amount: 20, orderId: "42" },
    });
    expect(replay.response.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.data?.hold.id).toBe(hold.id);

    const balance = await service.GET("/v1/accounts/{id}", {
      params: { path: { id: "qs-alice" } },
    });
    expect(balance.data).toMatchObject({ settled: 30, held: 0, available: 30 });
    const entries = await service.GET("/v1/accounts/{id}/entries", {
      params: { path: { id: "qs-alice" }, query: { limit: 10 } },
    });
    expect(entries.data?.data.map((e) => [e.kind, e.amount])).toEqual([
      ["purchase", -20],
      ["credit", 50],
    ]);
  });
});
