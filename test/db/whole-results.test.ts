import { sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUnavailable } from "../../src/db/errors.ts";
import { IncompleteResultError, incompleteness } from "../../src/db/whole-results.ts";
import { createApp } from "../../src/http/app.ts";
import { getAccount } from "../../src/ledger/account.ts";
import { listEntries } from "../../src/ledger/list-entries.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis } from "../../src/process/connections.ts";
import { SERVICE, testEnv } from "../helpers/app.ts";
import { checkResponses } from "../helpers/contract.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";
import { type Damage, sparseDatabase, sparseDriver } from "../helpers/sparse-driver.ts";
import { REDIS_URL } from "../helpers/urls.ts";

// Defence in depth behind patches/postgres+3.4.9.patch: whatever the driver hands back, a
// result that is not whole is an error (503, retried with the same key), never an answer.

const result = (rows: unknown[], count: number | null, columns = ["id"]) =>
  Object.defineProperties([...rows], { count: { value: count }, columns: { value: columns } });

describe("incompleteness", () => {
  it("accepts whole results, with or without rows", () => {
    expect(incompleteness(result([{ id: 1 }, { id: 2 }], 2))).toBeUndefined();
    expect(incompleteness(result([], 0))).toBeUndefined();
    expect(incompleteness(result([], 5, []))).toBeUndefined(); // UPDATE 5 without RETURNING
    expect(incompleteness(result([], null, []))).toBeUndefined(); // BEGIN, SET
    expect(incompleteness([result([{ id: 1 }], 1), result([], null, [])])).toBeUndefined();
  });

  it("refuses holes, a length other than the row count, and what is not a result", () => {
    const sparse = result([], 1);
    sparse[3] = { id: "alice" };
    expect(incompleteness(sparse)).toMatch(/row 0 of 4 is missing/);
    expect(incompleteness(result([{ id: 1 }], 2))).toMatch(/1 rows where the server sent 2/);
    expect(incompleteness(result([{ id: 1 }, undefined], 2))).toMatch(/row 1/);
    expect(incompleteness([result([{ id: 1 }], 1), result([], 1)])).toMatch(/0 rows/);
    expect(incompleteness(undefined)).toBeDefined();
  });
});

let db: TestDatabase;
let redis: Redis;
beforeAll(async () => {
  db = await createTestDatabase();
  redis = await connectRedis(REDIS_URL);
  await fundedAccount(db.db, "alice", 50);
});
afterAll(async () => {
  redis.disconnect();
  await db.drop();
});

describe.each<Damage>(["holes", "short"])("a driver that answers with %s", (damage) => {
  it("an existing account is never answered as missing, nor an entry page as too long", async () => {
    const fault: { damage?: Damage; when: RegExp } = { damage, when: /FROM accounts/ };
    const stubbed = sparseDatabase(sparseDriver(db.sql, fault));
    const error = await getAccount(stubbed, "alice").catch((e: unknown) => e);
    expect((error as Error).cause).toBeInstanceOf(IncompleteResultError);
    expect(isUnavailable(error)).toBe(true);
    fault.when = /FROM entries/;
    const page = await listEntries(stubbed, { accountId: "alice", limit: 50 }).catch((e) => e);
    expect((page as Error).cause).toBeInstanceOf(IncompleteResultError);
    fault.damage = undefined;
    expect((await getAccount(stubbed, "alice")).available).toBe(50);
  });

  it("over HTTP: reads answer 503 unavailable; a purchase answers 503, stores nothing, and its retry takes effect once", async () => {
    const fault: { damage?: Damage; when: RegExp } = { damage, when: /FROM accounts/ };
    const app = createApp({
      db: sparseDatabase(sparseDriver(db.sql, fault)),
      redis,
      env: testEnv(),
      logger: createLogger("silent"),
    });
    checkResponses(app);
    const headers = { authorization: `Bearer ${SERVICE}`, "content-type": "application/json" };
    const account = await fundedAccount(db.db, `buyer-${damage}`, 50);
    const read = await app.request(`/v1/accounts/${account}`, { headers });
    expect(read.status).toBe(503);
    expect(((await read.json()) as { code: string }).code).toBe("unavailable");

    const key = `buy-${damage}`;
    const buy = () =>
      app.request("/v1/purchases", {
        method: "POST",
        headers: { ...headers, "idempotency-key": key },
        body: JSON.stringify({ accountId: account, amount: 20 }),
      });
    fault.when = /holdfast_place_holds/;
    const failed = await buy();
    expect(failed.status).toBe(503);
    const [stored] = await db.db.execute<{ n: number }>(sql`
      SELECT (SELECT count(*) FROM holds WHERE account_id = ${account})::int
           + (SELECT count(*) FROM idempotency_keys WHERE key = ${key})::int AS n`);
    expect(stored?.n).toBe(0);

    fault.damage = undefined;
    const retried = await buy();
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
    expect(((await retried.json()) as { account: unknown }).account).toMatchObject({
      settled: 50,
      held: 20,
    });
  });
});
