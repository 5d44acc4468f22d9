import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { contractFetch } from "../helpers/contract.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { type ServeProcess, spawnServe } from "../helpers/processes.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await expectLedgerConsistent(t.db.db);
  await t.close();
});

const purchase = (
  accountId: string,
  amount: number,
  key: string,
  extra: Record<string, unknown> = {},
) =>
  t.call("POST", "/v1/purchases", { token: SERVICE, key, body: { accountId, amount, ...extra } });

describe("POST /v1/purchases", () => {
  it("places a pending hold and reports the account after it", async () => {
    await fundedAccount(t.db.db, "p-basic", 50);
    const r = await purchase("p-basic", 20, "p-basic-1", {
      orderId: "order-1",
      description: "sword",
      expiresInSeconds: 60,
    });
    expect(r.status).toBe(201);
    expect(r.json.account).toMatchObject({ id: "p-basic", settled: 50, held: 20, available: 30 });
    expect(r.json.hold).toMatchObject({
      accountId: "p-basic",
      amount: 20,
      status: "pending",
      settledAmount: null,
      orderId: "order-1",
      description: "sword",
      resolvedAt: null,
    });
    const ttl = Date.parse(r.json.hold.expiresAt) - Date.parse(r.json.hold.createdAt);
    expect(ttl).toBe(60_000);
    const read = await t.call("GET", `/v1/holds/${r.json.hold.id}`, { token: SERVICE });
    expect(read.json).toEqual(r.json.hold);
  });

  it("defaults the deadline to 900 s and refuses out-of-range expiresInSeconds", async () => {
    await fundedAccount(t.db.db, "p-ttl", 50);
    const r = await purchase("p-ttl", 1, "p-ttl-1");
    expect(Date.parse(r.json.hold.expiresAt) - Date.parse(r.json.hold.createdAt)).toBe(900_000);
    for (const [i, expiresInSeconds] of [0, 604_801, 1.5, "60"].entries()) {
      const bad = await purchase("p-ttl", 1, `p-ttl-bad-${i}`, { expiresInSeconds });
      expect(bad.status).toBe(400);
      expect(bad.json.code).toBe("invalid_request");
    }
  });

  it("answers insufficient_funds (422) and account_not_found (404), and replays them", async () => {
    await fundedAccount(t.db.db, "p-poor", 5);
    const poor = await purchase("p-poor", 6, "p-poor-1");
    expect(poor.status).toBe(422);
    expect(poor.json.code).toBe("insufficient_funds");
    const again = await purchase("p-poor", 6, "p-poor-1");
    expect(again.text).toBe(poor.text);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const missing = await purchase("nobody", 1, "p-missing-1");
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe("account_not_found");
  });

  it("requires an Idempotency-Key", async () => {
    const r = await t.call("POST", "/v1/purchases", {
      token: SERVICE,
      body: { accountId: "p-poor", amount: 1 },
    });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe("idempotency_key_required");
  });

  it("40 concurrent purchases of 7 on 100 coins over HTTP: exactly 14 holds", async () => {
    await fundedAccount(t.db.db, "p-race", 100);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => purchase("p-race", 7, `p-race-${i}`)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(14);
    expect(
      results.filter((r) => r.status === 422 && r.json.code === "insufficient_funds"),
    ).toHaveLength(26);
    const account = await t.call("GET", "/v1/accounts/p-race", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 100, held: 98, available: 2 });
  });

  it("10 concurrent duplicates with one key: one hold, every answer the same", async () => {
    await fundedAccount(t.db.db, "p-dup", 100);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => purchase("p-dup", 10, "p-dup-key")),
    );
    const ok = results.filter((r) => r.status === 201);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ok.map((r) => r.text)).size).toBe(1);
    expect(results.every((r) => r.status === 201 || r.json.code === "idempotency_key_in_use")).toBe(
      true,
    );
    const holds = await t.call("GET", "/v1/accounts/p-dup/holds", { token: SERVICE });
    expect(holds.json.data).toHaveLength(1);
    expect((await t.call("GET", "/v1/accounts/p-dup", { token: SERVICE })).json.held).toBe(10);
  });
});

describe("holds over HTTP", () => {
  it("concurrent settles and releases, batched: each request gets its own answer", async () => {
    await fundedAccount(t.db.db, "h-many", 1000);
    const holds: string[] = [];
    for (let i = 0; i < 30; i++)
      holds.push((await purchase("h-many", 5, `h-many-${i}`)).json.hold.id);
    const settle = (id: string, body: object, key?: string) =>
      t.call("POST", `/v1/holds/${id}/settle`, { token: SERVICE, body, key });
    // Per hold, by i mod 3: settle 3 of 5; settle 9 of 5 (refused); release. The first ten are
    // also settled twice at once with one Idempotency-Key.
    const calls = holds.flatMap((id, i) => {
      const first =
        i % 3 === 0
          ? settle(id, { amount: 3 }, `s-${i}`)
          : i % 3 === 1
            ? settle(id, { amount: 9 })
            : t.call("POST", `/v1/holds/${id}/release`, { token: SERVICE, body: {} });
      return i < 10 && i % 3 === 0 ? [first, settle(id, { amount: 3 }, `s-${i}`)] : [first];
    });
    const answers = await Promise.all(calls);
    let next = 0;
    for (const [i, id] of holds.entries()) {
      const answer = answers[next++]!;
      if (i % 3 === 0) {
        expect(answer.json).toMatchObject({ id, status: "settled", settledAmount: 3 });
        if (i < 10) expect(answers[next++]!.json).toEqual(answer.json);
      } else if (i % 3 === 1) {
        expect([answer.status, answer.json.code]).toEqual([422, "amount_exceeds_hold"]);
      } else {
        expect(answer.json).toMatchObject({ id, status: "released" });
      }
    }
    const account = await t.call("GET", "/v1/accounts/h-many", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 1000 - 10 * 3, held: 10 * 5 });
    // Batched, not one transaction each (a batch that failed would be retried request by
    // request, with the same answers): the ten settled holds were written by few transactions.
    const [writers] = await t.db.sql<{ n: number }[]>`
      SELECT count(DISTINCT xmin::text)::int AS n FROM holds
       WHERE account_id = 'h-many' AND status = 'settled'`;
    expect(writers!.n).toBeLessThanOrEqual(3);
  });

  it("settle, partial settle, release and their conflicts", async () => {
    await fundedAccount(t.db.db, "h-flow", 100);
    const a = (await purchase("h-flow", 30, "h-flow-a")).json.hold;
    const b = (await purchase("h-flow", 30, "h-flow-b")).json.hold;
    const c = (await purchase("h-flow", 30, "h-flow-c")).json.hold;

    const over = await t.call("POST", `/v1/holds/${a.id}/settle`, {
      token: SERVICE,
      body: { amount: 31 },
    });
    expect([over.status, over.json.code]).toEqual([422, "amount_exceeds_hold"]);
    const settled = await t.call("POST", `/v1/holds/${a.id}/settle`, { token: SERVICE });
    expect(settled.status).toBe(200);
    expect(settled.json).toMatchObject({ status: "settled", settledAmount: 30 });
    const repeat = await t.call("POST", `/v1/holds/${a.id}/settle`, { token: SERVICE, body: {} });
    expect(repeat.json).toEqual(settled.json);
    const releaseSettled = await t.call("POST", `/v1/holds/${a.id}/release`, { token: SERVICE });
    expect([releaseSettled.status, releaseSettled.json.code]).toEqual([409, "hold_not_pending"]);

    const partial = await t.call("POST", `/v1/holds/${b.id}/settle`, {
      token: SERVICE,
      body: { amount: 12 },
    });
    expect(partial.json).toMatchObject({ status: "settled", settledAmount: 12 });

    const released = await t.call("POST", `/v1/holds/${c.id}/release`, {
      token: SERVICE,
      body: { reason: "cancelled" },
    });
    expect(released.json).toMatchObject({ status: "released", reason: "cancelled" });
    const settleReleased = await t.call("POST", `/v1/holds/${c.id}/settle`, { token: SERVICE });
    expect([settleReleased.status, settleReleased.json.code]).toEqual([409, "hold_not_pending"]);

    const account = await t.call("GET", "/v1/accounts/h-flow", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 58, held: 0, available: 58 });
    const revenue = await t.call("GET", "/v1/accounts/@revenue", { token: ADMIN });
    expect(revenue.json.settled).toBeGreaterThanOrEqual(42);

    const pendingOnly = await t.call("GET", "/v1/accounts/h-flow/holds?status=settled&limit=1", {
      token: SERVICE,
    });
    expect(pendingOnly.json.data).toHaveLength(1);
    const next = await t.call(
      "GET",
      `/v1/accounts/h-flow/holds?status=settled&limit=1&cursor=${pendingOnly.json.nextCursor}`,
      {
        token: SERVICE,
      },
    );
    expect(next.json.data.map((h: { id: string }) => h.id)).toEqual([a.id]);
    expect(next.json.nextCursor).toBeNull();
  });

  it("unknown and malformed hold ids", async () => {
    const missing = await t.call("GET", "/v1/holds/01234567-89ab-7def-8123-456789abcdef", {
      token: SERVICE,
    });
    expect([missing.status, missing.json.code]).toEqual([404, "hold_not_found"]);
    const bad = await t.call("POST", "/v1/holds/not-a-uuid/settle", { token: SERVICE });
    expect([bad.status, bad.json.code]).toEqual([400, "invalid_request"]);
  });
});

describe("several API processes", () => {
  let servers: ServeProcess[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("purchases racing for the last coins across two processes: never both succeed", async () => {
    servers = await Promise.all([spawnServe(t.db.url), spawnServe(t.db.url)]);
    const accounts = Array.from({ length: 10 }, (_, i) => `mp-${i}`);
    for (const id of accounts) await fundedAccount(t.db.db, id, 10);
    // Per account: 6 purchases of 4 coins (only 2 fit), spread over both processes.
    const requests = accounts.flatMap((id) =>
      Array.from({ length: 6 }, (_, i) =>
        contractFetch(`${servers[i % 2]!.baseUrl}/v1/purchases`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${SERVICE}`,
            "content-type": "application/json",
            "idempotency-key": `${id}-${i}`,
          },
          body: JSON.stringify({ accountId: id, amount: 4 }),
        }).then(async (r) => ({ id, status: r.status, body: await r.json() })),
      ),
    );
    const results = await Promise.all(requests);
    for (const id of accounts) {
      const mine = results.filter((r) => r.id === id);
      expect(mine.filter((r) => r.status === 201)).toHaveLength(2);
      expect(mine.filter((r) => r.status === 422)).toHaveLength(4);
      const account = await t.call("GET", `/v1/accounts/${id}`, { token: SERVICE });
      expect(account.json).toMatchObject({ settled: 10, held: 8, available: 2 });
    }
  });
});
