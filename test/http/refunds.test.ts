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

const call = (method: string, path: string, key?: string, body?: unknown, token = SERVICE) =>
  t.call(method, path, { token, key, body });
const account = async (id: string) => (await call("GET", `/v1/accounts/${id}`)).json;

/** `coins` credited to a new account, and a purchase of `amount` settled for `captured`. */
async function settledPurchase(id: string, coins: number, amount: number, captured = amount) {
  await fundedAccount(t.db.db, id, coins);
  const placed = await call("POST", "/v1/purchases", `${id}-buy`, { accountId: id, amount });
  expect(placed.status).toBe(201);
  const settled = await call("POST", `/v1/holds/${placed.json.hold.id}/settle`, undefined, {
    amount: captured,
  });
  expect(settled.status).toBe(200);
  return placed.json.hold.id as string;
}

/** Rows a refused request must not add to. */
const counts = async () =>
  (
    await t.db.sql<{ n: string }[]>`
      SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM refunds)
           + (SELECT sum(refunded_amount) FROM holds) AS n`
  )[0]!.n;

describe("POST /v1/holds/{id}/refunds", () => {
  it("refunds a settled purchase, partly then the rest, idempotently", async () => {
    const holdId = await settledPurchase("h-rf", 100, 40);
    const first = await call("POST", `/v1/holds/${holdId}/refunds`, "rf-1", {
      amount: 15,
      reason: "damaged item",
      metadata: { ticket: "T-9" },
    });
    expect(first.status).toBe(201);
    expect(first.json.refund).toMatchObject({
      holdId,
      accountId: "h-rf",
      amount: 15,
      reason: "damaged item",
      metadata: { ticket: "T-9" },
    });
    expect(first.json.hold).toMatchObject({
      status: "settled",
      settledAmount: 40,
      refundedAmount: 15,
    });
    expect(first.json.account).toMatchObject({ settled: 75, held: 0, available: 75 });

    const replay = await call("POST", `/v1/holds/${holdId}/refunds`, "rf-1", {
      amount: 15,
      reason: "damaged item",
      metadata: { ticket: "T-9" },
    });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.text).toBe(first.text);
    const reused = await call("POST", `/v1/holds/${holdId}/refunds`, "rf-1", { amount: 16 });
    expect(reused.json.code).toBe("idempotency_key_reused");

    const rest = await call("POST", `/v1/holds/${holdId}/refunds`, "rf-2");
    expect(rest.status).toBe(201);
    expect(rest.json.refund.amount).toBe(25);
    expect(rest.json.hold.refundedAmount).toBe(40);
    expect(await account("h-rf")).toMatchObject({ settled: 100, available: 100 });

    const more = await call("POST", `/v1/holds/${holdId}/refunds`, "rf-3", { amount: 1 });
    expect(more.status).toBe(422);
    expect(more.json.code).toBe("refund_exceeds_settled");

    const listed = await call("GET", `/v1/holds/${holdId}/refunds?limit=1`);
    expect(listed.json.data).toEqual([rest.json.refund]);
    const next = await call(
      "GET",
      `/v1/holds/${holdId}/refunds?limit=1&cursor=${listed.json.nextCursor}`,
    );
    expect(next.json).toEqual({ data: [first.json.refund], nextCursor: null });
    expect((await call("GET", `/v1/holds/${holdId}`)).json.refundedAmount).toBe(40);
    const entries = await call("GET", "/v1/accounts/h-rf/entries?limit=2");
    expect(
      entries.json.data.map((e: { kind: string; amount: number }) => [e.kind, e.amount]),
    ).toEqual([
      ["refund", 25],
      ["refund", 15],
    ]);
  });

  it("answers each refusal with its code and writes nothing", async () => {
    const settled = await settledPurchase("h-rf-bad", 100, 10);
    const pending = (
      await call("POST", "/v1/purchases", "h-rf-bad-p", { accountId: "h-rf-bad", amount: 5 })
    ).json.hold.id;
    const before = await counts();
    const cases: [string, string | undefined, unknown, number, string][] = [
      [`/v1/holds/${pending}/refunds`, "bad-1", {}, 409, "hold_not_settled"],
      [`/v1/holds/${settled}/refunds`, "bad-2", { amount: 11 }, 422, "refund_exceeds_settled"],
      [
        "/v1/holds/01234567-89ab-7def-8123-456789abcdef/refunds",
        "bad-3",
        {},
        404,
        "hold_not_found",
      ],
      [`/v1/holds/${settled}/refunds`, undefined, {}, 400, "idempotency_key_required"],
      [`/v1/holds/${settled}/refunds`, "bad-4", { amount: 0 }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-5", { amount: 2.5 }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-6", { amount: "5" }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-7", { amount: 2 ** 53 }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-8", { extra: 1 }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-9", { reason: "" }, 400, "invalid_request"],
      [`/v1/holds/${settled}/refunds`, "bad-10", { metadata: [1] }, 400, "invalid_request"],
      ["/v1/holds/not-a-uuid/refunds", "bad-11", {}, 400, "invalid_request"],
    ];
    for (const [path, key, body, status, code] of cases) {
      const r = await call("POST", path, key, body);
      expect([path, body, r.status, r.json.code]).toEqual([path, body, status, code]);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
    }
    const unauthenticated = await t.call("POST", `/v1/holds/${settled}/refunds`, {
      token: null,
      key: "bad-12",
      body: {},
    });
    expect(unauthenticated.status).toBe(401);
    const malformed = await t.call("POST", `/v1/holds/${settled}/refunds`, {
      token: SERVICE,
      key: "bad-13",
      raw: "{",
    });
    expect(malformed.json.code).toBe("invalid_request");
    expect(await counts()).toBe(before);
    const listed = await call("GET", "/v1/holds/01234567-89ab-7def-8123-456789abcdef/refunds");
    expect(listed.json.code).toBe("hold_not_found");
  });

  it("the same key on both API processes refunds once; racing refunds of the last coins: one wins", async () => {
    const servers: ServeProcess[] = await Promise.all([spawnServe(t.db.url), spawnServe(t.db.url)]);
    try {
      const holds = await Promise.all(
        Array.from({ length: 6 }, (_, i) => settledPurchase(`h-rf-mp-${i}`, 100, 30)),
      );
      const post = (server: ServeProcess, holdId: string, key: string, body: unknown) =>
        contractFetch(`${server.baseUrl}/v1/holds/${holdId}/refunds`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${SERVICE}`,
            "content-type": "application/json",
            "idempotency-key": key,
          },
          body: JSON.stringify(body),
        }).then(async (r) => ({
          holdId,
          status: r.status,
          body: (await r.json()) as { refund?: { id: string }; code?: string },
        }));
      // Per hold: the same key sent three times to each process, and four other keys each
      // asking for 20 of the 30 coins, spread over both.
      const results = await Promise.all(
        holds.flatMap((holdId) => [
          ...Array.from({ length: 6 }, (_, i) =>
            post(servers[i % 2]!, holdId, `${holdId}-same`, { amount: 5 }),
          ),
          ...Array.from({ length: 4 }, (_, i) =>
            post(servers[i % 2]!, holdId, `${holdId}-race-${i}`, { amount: 20 }),
          ),
        ]),
      );
      for (const holdId of holds) {
        const mine = results.filter((r) => r.holdId === holdId);
        const same = mine.slice(0, 6);
        expect(new Set(same.map((r) => r.body.refund?.id)).size).toBe(1);
        expect(same.every((r) => r.status === 201)).toBe(true);
        const racing = mine.slice(6);
        expect(racing.filter((r) => r.status === 201)).toHaveLength(1);
        expect(racing.filter((r) => r.body.code === "refund_exceeds_settled")).toHaveLength(3);
        const hold = (await call("GET", `/v1/holds/${holdId}`)).json;
        expect(hold.refundedAmount).toBe(25);
        const refunds = (await call("GET", `/v1/holds/${holdId}/refunds`)).json.data;
        expect(refunds.map((r: { amount: number }) => r.amount).sort()).toEqual([20, 5]);
        expect(await account(hold.accountId)).toMatchObject({ settled: 95 });
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
});

describe("the serial order purchase, promotion, refund, over HTTP", () => {
  it("50 coins; buy 20 and it settles (30); redeem DOUBLE (60); refund the purchase (80)", async () => {
    await fundedAccount(t.db.db, "h-story", 50);
    const buy = await call("POST", "/v1/purchases", "h-story-buy", {
      accountId: "h-story",
      amount: 20,
    });
    await call("POST", `/v1/holds/${buy.json.hold.id}/settle`);
    expect(await account("h-story")).toMatchObject({ settled: 30 });
    await call("POST", "/v1/promotions", undefined, { code: "STORY2X" }, ADMIN);
    const redeemed = await call("POST", "/v1/promotions/STORY2X/redemptions", "h-story-redeem", {
      accountId: "h-story",
    });
    expect(redeemed.json.redemption).toMatchObject({ basis: 30, credited: 30 });
    expect(redeemed.json.account).toMatchObject({ settled: 60 });
    const refunded = await call("POST", `/v1/holds/${buy.json.hold.id}/refunds`, "h-story-refund");
    expect(refunded.json.account).toMatchObject({ settled: 80, held: 0, available: 80 });
  });
});

describe("POST /v1/accounts/{id}/adjustments", () => {
  const adjust = (id: string, key: string | undefined, body: unknown, token = ADMIN) =>
    t.call("POST", `/v1/accounts/${id}/adjustments`, { token, key, body });

  it("posts a signed adjustment against @adjustments, idempotently", async () => {
    await fundedAccount(t.db.db, "h-adj", 50);
    const up = await adjust("h-adj", "adj-1", {
      amount: 30,
      reason: "goodwill",
      metadata: { by: "kim" },
    });
    expect(up.status).toBe(201);
    expect(up.json.adjustment).toMatchObject({
      accountId: "h-adj",
      amount: 30,
      reason: "goodwill",
      metadata: { by: "kim" },
    });
    expect(up.json.account).toMatchObject({ settled: 80, available: 80 });
    const again = await adjust("h-adj", "adj-1", {
      amount: 30,
      reason: "goodwill",
      metadata: { by: "kim" },
    });
    expect(again.text).toBe(up.text);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const down = await adjust("h-adj", "adj-2", { amount: -80, reason: "chargeback" });
    expect(down.json.account).toMatchObject({ settled: 0, available: 0 });
    const entries = await call("GET", "/v1/accounts/h-adj/entries?limit=2");
    expect(
      entries.json.data.map((e: { kind: string; amount: number }) => [e.kind, e.amount]),
    ).toEqual([
      ["adjustment", -80],
      ["adjustment", 30],
    ]);
    const system = await t.call("GET", "/v1/accounts/@adjustments/entries?limit=2");
    expect(system.json.data.map((e: { amount: number }) => e.amount)).toEqual([80, -30]);
  });

  it("never takes available below 0, and refuses bad input, writing nothing", async () => {
    await fundedAccount(t.db.db, "h-adj-bad", 50);
    await call("POST", "/v1/purchases", "h-adj-bad-p", { accountId: "h-adj-bad", amount: 30 });
    const before = await counts();
    const cases: [string, string | undefined, unknown, string, number, string][] = [
      ["h-adj-bad", "a-1", { amount: -21, reason: "x" }, ADMIN, 422, "insufficient_funds"],
      [
        "h-adj-bad",
        "a-2",
        { amount: 2 ** 53 - 1, reason: "x" },
        ADMIN,
        422,
        "balance_limit_exceeded",
      ],
      ["nobody", "a-3", { amount: 1, reason: "x" }, ADMIN, 404, "account_not_found"],
      ["h-adj-bad", "a-4", { amount: 1, reason: "x" }, SERVICE, 403, "forbidden"],
      ["h-adj-bad", undefined, { amount: 1, reason: "x" }, ADMIN, 400, "idempotency_key_required"],
      ["h-adj-bad", "a-5", { amount: 0, reason: "x" }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-6", { amount: 1 }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-7", { amount: 1, reason: "" }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-8", { amount: 1.5, reason: "x" }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-9", { amount: -(2 ** 53), reason: "x" }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-10", { amount: "1", reason: "x" }, ADMIN, 400, "invalid_request"],
      ["h-adj-bad", "a-11", { amount: 1, reason: "x", extra: true }, ADMIN, 400, "invalid_request"],
      ["@revenue", "a-12", { amount: 1, reason: "x" }, ADMIN, 400, "invalid_request"],
    ];
    for (const [id, key, body, token, status, code] of cases) {
      const r = await adjust(id, key, body, token);
      expect([id, body, r.status, r.json.code]).toEqual([id, body, status, code]);
    }
    expect(await counts()).toBe(before);
    const ok = await adjust("h-adj-bad", "a-13", { amount: -20, reason: "x" });
    expect(ok.json.account).toMatchObject({ settled: 30, held: 30, available: 0 });
  });
});
