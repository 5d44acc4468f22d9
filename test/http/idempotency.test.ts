import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { purgeIdempotencyKeys } from "../../src/writes/purge-keys.ts";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

async function open(id: string, credit = 0) {
  const r = await t.call("POST", "/v1/accounts", { token: SERVICE, body: { id } });
  expect(r.status).toBe(201);
  if (credit > 0) {
    const c = await t.call("POST", `/v1/accounts/${id}/credits`, {
      key: `open-${id}`,
      body: { amount: credit },
    });
    expect(c.status).toBe(201);
  }
}

async function ledgerOf(id: string) {
  const [row] = await t.db.sql<{ settled: number; entries: number; transactions: number }[]>`
    SELECT a.settled,
           (SELECT count(*) FROM entries e WHERE e.account_id = a.id)::int AS entries,
           (SELECT count(*) FROM ledger_transactions)::int AS transactions
      FROM accounts a WHERE a.id = ${id}`;
  return row!;
}

describe("replay", () => {
  it("a replay returns the first response byte for byte, flagged Idempotent-Replayed", async () => {
    await open("alice");
    const request = { key: "credit-alice-1", body: { amount: 7, reason: "welcome" } };
    const first = await t.call("POST", "/v1/accounts/alice/credits", request);
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(first.json.account).toMatchObject({ id: "alice", settled: 7 });

    const replay = await t.call("POST", "/v1/accounts/alice/credits", request);
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.headers.get("content-type")).toBe("application/json");
    expect(replay.text).toBe(first.text);

    expect(await ledgerOf("alice")).toMatchObject({ settled: 7, entries: 1 });
  });

  it("a replay on POST /v1/accounts returns the created account, not 409 account_exists", async () => {
    const request = { token: SERVICE, key: "open-bea", body: { id: "bea" } };
    const first = await t.call("POST", "/v1/accounts", request);
    const replay = await t.call("POST", "/v1/accounts", request);
    expect(first.status).toBe(201);
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
  });
});

describe("reuse of a key for a different request", () => {
  it("same key, different body: 422 idempotency_key_reused and no effect", async () => {
    await open("carl");
    const first = await t.call("POST", "/v1/accounts/carl/credits", {
      key: "carl-k",
      body: { amount: 10 },
    });
    expect(first.status).toBe(201);
    const before = await ledgerOf("carl");

    const reused = await t.call("POST", "/v1/accounts/carl/credits", {
      key: "carl-k",
      body: { amount: 11 },
    });
    expect(reused.status).toBe(422);
    expect(reused.headers.get("content-type")).toBe("application/problem+json");
    expect(reused.json.code).toBe("idempotency_key_reused");
    expect(reused.headers.get("idempotent-replayed")).toBeNull();
    expect(await ledgerOf("carl")).toEqual(before);
    expect(before).toMatchObject({ settled: 10, entries: 1 });
  });

  it("same key, same account, another route: 422 and nothing is written", async () => {
    await open("dina");
    const first = await t.call("POST", "/v1/accounts/dina/credits", {
      key: "path-k",
      body: { amount: 3 },
    });
    expect(first.status).toBe(201);
    const other = await t.call("POST", "/v1/accounts", { key: "path-k", body: { id: "dina" } });
    expect(other.status).toBe(422);
    expect(other.json.code).toBe("idempotency_key_reused");
    expect(await ledgerOf("dina")).toMatchObject({ settled: 3, entries: 1 });
  });

  it("a key belongs to the account its request names: on another account it is another request", async () => {
    await open("ezra");
    await open("ezra-2");
    const body = { amount: 3 };
    const first = await t.call("POST", "/v1/accounts/ezra/credits", { key: "scope-k", body });
    const other = await t.call("POST", "/v1/accounts/ezra-2/credits", { key: "scope-k", body });
    expect([first.status, other.status]).toEqual([201, 201]);
    expect(other.headers.get("idempotent-replayed")).toBeNull();
    expect((await ledgerOf("ezra")).settled).toBe(3);
    expect((await ledgerOf("ezra-2")).settled).toBe(3);
  });

  it("keys are scoped per role: admin and service using one key are independent", async () => {
    const asAdmin = await t.call("POST", "/v1/accounts", { key: "shared-k", body: { id: "fay" } });
    const asService = await t.call("POST", "/v1/accounts", {
      token: SERVICE,
      key: "shared-k",
      body: { id: "gus" },
    });
    expect(asAdmin.status).toBe(201);
    expect(asService.status).toBe(201);
    expect(asService.headers.get("idempotent-replayed")).toBeNull();
    expect(asAdmin.json.id).toBe("fay");
    expect(asService.json.id).toBe("gus");
    const rows = await t.db.sql<{ role: string }[]>`
      SELECT role FROM idempotency_keys WHERE key = 'shared-k' ORDER BY role`;
    expect(rows.map((r) => r.role)).toEqual(["admin", "service"]);
  });
});

describe("business errors and validation failures", () => {
  it("a business error is stored and replayed byte for byte, even after the cause is gone", async () => {
    const request = { key: "credit-ghost", body: { amount: 5 } };
    const first = await t.call("POST", "/v1/accounts/ghost/credits", request);
    expect(first.status).toBe(404);
    expect(first.headers.get("content-type")).toBe("application/problem+json");
    expect(first.json.code).toBe("account_not_found");

    await open("ghost");
    const replay = await t.call("POST", "/v1/accounts/ghost/credits", request);
    expect(replay.status).toBe(404);
    expect(replay.headers.get("content-type")).toBe("application/problem+json");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.text).toBe(first.text);
    expect(await ledgerOf("ghost")).toMatchObject({ settled: 0, entries: 0 });

    const fresh = await t.call("POST", "/v1/accounts/ghost/credits", {
      key: "credit-ghost-2",
      body: { amount: 5 },
    });
    expect(fresh.status).toBe(201);
    expect(fresh.json.account.settled).toBe(5);
  });

  it("a 400 is not stored: the same key with a corrected body then takes effect", async () => {
    await open("hana");
    const bad = await t.call("POST", "/v1/accounts/hana/credits", {
      key: "hana-k",
      body: { amount: -4 },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("invalid_request");
    const [stored] = await t.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM idempotency_keys WHERE key = 'hana-k'`;
    expect(stored!.n).toBe(0);

    const good = await t.call("POST", "/v1/accounts/hana/credits", {
      key: "hana-k",
      body: { amount: 4 },
    });
    expect(good.status).toBe(201);
    expect(good.headers.get("idempotent-replayed")).toBeNull();
    expect(good.json.account.settled).toBe(4);
  });
});

describe("concurrency", () => {
  it("14 concurrent identical credits with one key: one transaction, one effect", async () => {
    await open("ivan", 100);
    const before = await ledgerOf("ivan");
    const responses = await Promise.all(
      Array.from({ length: 14 }, () =>
        t.call("POST", "/v1/accounts/ivan/credits", { key: "ivan-race", body: { amount: 25 } }),
      ),
    );
    const created = responses.filter((r) => r.status === 201);
    const inUse = responses.filter((r) => r.status === 409);
    expect(created.length + inUse.length).toBe(14);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const r of inUse) expect(r.json.code).toBe("idempotency_key_in_use");

    const transactionIds = new Set(created.map((r) => r.json.transactionId));
    expect(transactionIds.size).toBe(1);
    // Exactly one response is the original; every other 201 is its replay.
    expect(created.filter((r) => r.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    for (const r of created) expect(r.text).toBe(created[0]!.text);

    const after = await ledgerOf("ivan");
    expect(after.settled).toBe(125);
    expect(after.entries).toBe(before.entries + 1);
    expect(after.transactions).toBe(before.transactions + 1);
    const [tx] = await t.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM entries WHERE transaction_id = ${[...transactionIds][0]}`;
    expect(tx!.n).toBe(2);
  });

  it("12 concurrent credits with different keys: 12 effects, balance exact", async () => {
    await open("jade");
    const responses = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.call("POST", "/v1/accounts/jade/credits", {
          key: `jade-${i}`,
          body: { amount: i + 1 },
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(12).fill(201));
    expect(new Set(responses.map((r) => r.json.transactionId)).size).toBe(12);
    const after = await ledgerOf("jade");
    expect(after).toMatchObject({ settled: 78, entries: 12 });
    const seqs = await t.db.sql<{ seq: number }[]>`
      SELECT seq FROM entries WHERE account_id = 'jade' ORDER BY seq`;
    expect(seqs.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });
});

describe("purgeIdempotencyKeys", () => {
  it("deletes only keys older than 24 hours", async () => {
    await open("kim");
    for (const k of ["old-1", "old-2", "recent", "fresh"]) {
      const r = await t.call("POST", "/v1/accounts/kim/credits", { key: k, body: { amount: 1 } });
      expect(r.status).toBe(201);
    }
    await t.db.sql`
      UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
       WHERE key IN ('old-1', 'old-2')`;
    await t.db.sql`
      UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'recent'`;
    const total = async () => {
      const [row] = await t.db.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM idempotency_keys`;
      return row!.n;
    };
    const before = await total();

    expect(await purgeIdempotencyKeys(t.db.db)).toBe(2);

    expect(await total()).toBe(before - 2);
    const left = await t.db.sql<{ key: string }[]>`
      SELECT key FROM idempotency_keys WHERE key IN ('old-1', 'old-2', 'recent', 'fresh')
       ORDER BY key`;
    expect(left.map((r) => r.key)).toEqual(["fresh", "recent"]);
    expect(await purgeIdempotencyKeys(t.db.db)).toBe(0);

    // The 23-hour-old key still replays.
    const replay = await t.call("POST", "/v1/accounts/kim/credits", {
      key: "recent",
      body: { amount: 1 },
    });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect((await ledgerOf("kim")).settled).toBe(4);
  });
});
