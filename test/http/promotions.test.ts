import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { expectLedgerConsistent } from "../helpers/ledger.ts";
import {
  dbNow,
  jitter,
  replaySerially,
  type SequencedEntry,
  storyOutcome,
} from "../helpers/promotions.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  const r = await t.call("POST", "/v1/promotions", { body: { code: "DOUBLE" } });
  expect(r.status).toBe(201);
});
afterAll(async () => {
  await expectLedgerConsistent(t.db.db);
  await t.close();
});

let keys = 0;
const key = (what: string) => `${what}-${++keys}`;

async function account(id: string, coins: number): Promise<string> {
  const opened = await t.call("POST", "/v1/accounts", { token: SERVICE, body: { id } });
  expect(opened.status).toBe(201);
  if (coins > 0) {
    const credited = await t.call("POST", `/v1/accounts/${id}/credits`, {
      key: key("credit"),
      body: { amount: coins },
    });
    expect(credited.status).toBe(201);
  }
  return id;
}

const redeem = (accountId: string, code = "DOUBLE", idempotencyKey = key("redeem")) =>
  t.call("POST", `/v1/promotions/${code}/redemptions`, {
    token: SERVICE,
    key: idempotencyKey,
    body: { accountId },
  });

const purchase = (accountId: string, amount: number) =>
  t.call("POST", "/v1/purchases", {
    token: SERVICE,
    key: key("purchase"),
    body: { accountId, amount },
  });

const resolve = (holdId: string, verb: "settle" | "release") =>
  t.call("POST", `/v1/holds/${holdId}/${verb}`, { token: SERVICE });

const balance = async (id: string) =>
  (await t.call("GET", `/v1/accounts/${id}`, { token: SERVICE })).json;

/** The account's entries through the API (newest first there), in sequence order. */
async function entries(id: string): Promise<SequencedEntry[]> {
  const page = await t.call("GET", `/v1/accounts/${id}/entries?limit=200`, { token: SERVICE });
  expect(page.status).toBe(200);
  return (page.json.data as SequencedEntry[]).reverse();
}

async function promotionCount(): Promise<number> {
  const [row] = await t.db.db.execute<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM promotions`,
  );
  return row!.n;
}

describe("POST /v1/promotions and GET /v1/promotions/{code}", () => {
  it("creates with defaults (201) and reads it back with the service token", async () => {
    const created = await t.call("POST", "/v1/promotions", { body: { code: "PLAIN" } });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({
      code: "PLAIN",
      multiplier: 2,
      maxRedemptions: null,
      redemptions: 0,
      startsAt: null,
      endsAt: null,
      createdAt: expect.any(String),
    });
    const read = await t.call("GET", "/v1/promotions/PLAIN", { token: SERVICE });
    expect(read.status).toBe(200);
    expect(read.json).toEqual(created.json);
  });

  it("stores every field; a taken code is 409 promotion_exists", async () => {
    const body = {
      code: "TRIPLE_2030",
      multiplier: 3,
      maxRedemptions: 1000,
      startsAt: "2030-01-01T00:00:00+02:00",
      endsAt: "2030-02-01T00:00:00.000Z",
    };
    const created = await t.call("POST", "/v1/promotions", { body });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      multiplier: 3,
      maxRedemptions: 1000,
      startsAt: "2029-12-31T22:00:00.000Z",
      endsAt: "2030-02-01T00:00:00.000Z",
    });
    const again = await t.call("POST", "/v1/promotions", { body: { code: "TRIPLE_2030" } });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe("promotion_exists");
    expect(again.headers.get("content-type")).toBe("application/problem+json");
  });

  it("accepts an Idempotency-Key: a replay returns the first response", async () => {
    const first = await t.call("POST", "/v1/promotions", {
      key: "create-keyed",
      body: { code: "KEYED" },
    });
    const replay = await t.call("POST", "/v1/promotions", {
      key: "create-keyed",
      body: { code: "KEYED" },
    });
    expect(first.status).toBe(201);
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
  });

  it("refuses bad bodies with 400 invalid_request and writes nothing", async () => {
    const before = await promotionCount();
    const bodies = [
      { code: "BAD_M1", multiplier: 1 },
      { code: "BAD_M11", multiplier: 11 },
      { code: "BAD_MF", multiplier: 2.5 },
      { code: "BAD_MS", multiplier: "2" },
      { code: "ab" },
      { code: "lowercase" },
      { code: "HAS SPACE" },
      { code: "X".repeat(33) },
      { code: "BAD_MAX", maxRedemptions: 0 },
      { code: "BAD_WIN", startsAt: "2030-01-02T00:00:00Z", endsAt: "2030-01-01T00:00:00Z" },
      { code: "BAD_DATE", startsAt: "tomorrow" },
      { code: "BAD_EXTRA", bonus: true },
      { multiplier: 2 },
    ];
    for (const body of bodies) {
      const r = await t.call("POST", "/v1/promotions", { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.code).toBe("invalid_request");
      expect(r.json.errors.length).toBeGreaterThan(0);
    }
    expect(await promotionCount()).toBe(before);
  });

  it("admin only: the service token gets 403, no token 401, and nothing is written", async () => {
    const before = await promotionCount();
    const r = await t.call("POST", "/v1/promotions", { token: SERVICE, body: { code: "SNEAKY" } });
    expect(r.status).toBe(403);
    expect(r.json.code).toBe("forbidden");
    const anonymous = await t.call("POST", "/v1/promotions", {
      token: null,
      body: { code: "ANON" },
    });
    expect(anonymous.status).toBe(401);
    expect(await promotionCount()).toBe(before);
  });

  it("an unknown code is 404 promotion_not_found; a malformed one 400 invalid_request", async () => {
    const missing = await t.call("GET", "/v1/promotions/NOPE", { token: SERVICE });
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe("promotion_not_found");
    for (const code of ["ab", "double", "TOO-LONG-".repeat(4)]) {
      const r = await t.call("GET", `/v1/promotions/${code}`, { token: SERVICE });
      expect(r.status).toBe(400);
      expect(r.json.code).toBe("invalid_request");
    }
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await t.call("GET", "/openapi.json", { token: null })).json;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/promotions",
        "/v1/promotions/{code}",
        "/v1/promotions/{code}/redemptions",
      ]),
    );
    expect(doc.paths["/v1/promotions"].post.responses).toHaveProperty("201");
    expect(doc.paths["/v1/promotions/{code}/redemptions"].post.responses).toHaveProperty("201");
    expect(doc.components.schemas).toHaveProperty("Promotion");
    expect(doc.components.schemas).toHaveProperty("Redemption");
  });
});

describe("the founding story through the API", () => {
  it("50 settled, hold 20, redeem DOUBLE (settled 100, available 80); the purchase fails: 100", async () => {
    const id = await account("story-fails", 50);
    const bought = await purchase(id, 20);
    expect(bought.status).toBe(201);
    expect(bought.json.account).toMatchObject({ settled: 50, held: 20, available: 30 });
    const redeemed = await redeem(id);
    expect(redeemed.status).toBe(201);
    expect(redeemed.json.redemption).toMatchObject({
      code: "DOUBLE",
      accountId: id,
      basis: 50,
      credited: 50,
    });
    expect(redeemed.json.account).toMatchObject({ settled: 100, held: 20, available: 80 });
    expect((await resolve(bought.json.hold.id, "release")).status).toBe(200);
    expect(await balance(id)).toMatchObject({ settled: 100, held: 0, available: 100 });
  });

  it("the purchase succeeds: 80, and the entries read credit, promotion, purchase", async () => {
    const id = await account("story-succeeds", 50);
    const bought = await purchase(id, 20);
    const redeemed = await redeem(id);
    expect(redeemed.json.account).toMatchObject({ settled: 100, held: 20, available: 80 });
    expect((await resolve(bought.json.hold.id, "settle")).status).toBe(200);
    expect(await balance(id)).toMatchObject({ settled: 80, held: 0, available: 80 });
    const page = await t.call("GET", `/v1/accounts/${id}/entries`, { token: SERVICE });
    expect(
      page.json.data.map((e: SequencedEntry) => [e.seq, e.kind, e.amount, e.settledAfter]),
    ).toEqual([
      [3, "purchase", -20, 80],
      [2, "promotion", 50, 100],
      [1, "credit", 50, 50],
    ]);
    const promotionEntry = page.json.data[1];
    expect(promotionEntry.transactionId).toBe(redeemed.json.redemption.transactionId);
    expect(promotionEntry.metadata).toEqual({ promotion: "DOUBLE" });
  });

  it("purchase and redemption sent at the same instant on 30 accounts, half released, half settled: every balance is some serial order's", async () => {
    const ids = await Promise.all(
      Array.from({ length: 30 }, (_, i) => account(`instant-${i}`, 50)),
    );
    const holds = await Promise.all(
      ids.map(async (id) => {
        const [bought, redeemed] = await Promise.all([purchase(id, 20), redeem(id)]);
        expect(bought.status).toBe(201);
        expect(redeemed.status).toBe(201);
        return bought.json.hold.id as string;
      }),
    );
    // Each resolution races the other accounts' resolutions and nothing else here.
    const resolved = await Promise.all(
      holds.map((holdId, i) => resolve(holdId, i % 2 === 0 ? "release" : "settle")),
    );
    expect(resolved.every((r) => r.status === 200)).toBe(true);
    for (const [i, id] of ids.entries()) {
      const { settled, kinds } = replaySerially(await entries(id), 2);
      expect(await balance(id)).toMatchObject({ settled, held: 0, available: settled });
      expect(settled).toBe(storyOutcome(kinds));
      expect(settled).toBe(i % 2 === 0 ? 100 : 80);
    }
  });

  it("settle or release racing the redemption on 30 accounts: each balance is the serial outcome of its own entry order", async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, (_, i) => account(`racing-${i}`, 50)));
    const holds = await Promise.all(ids.map((id) => purchase(id, 20)));
    const results = await Promise.all(
      ids.map((id, i) =>
        Promise.all([
          jitter(4).then(() => resolve(holds[i]!.json.hold.id, i % 2 === 0 ? "release" : "settle")),
          jitter(4).then(() => redeem(id)),
        ]),
      ),
    );
    expect(results.flat().every((r) => r.status === 200 || r.status === 201)).toBe(true);
    for (const [i, id] of ids.entries()) {
      const { settled, kinds } = replaySerially(await entries(id), 2);
      expect(await balance(id)).toMatchObject({ settled, held: 0 });
      expect(settled).toBe(storyOutcome(kinds));
      // Released: 100. Settled: 80 (promotion first) or 60 (purchase settled first: 30 × 2).
      expect(i % 2 === 0 ? [100] : [80, 60]).toContain(settled);
      // The redemption's basis is the balance before it in that same order.
      const redemption = results[i]![1].json.redemption;
      expect(redemption.basis).toBe(kinds.indexOf("purchase") === 1 ? 30 : 50);
    }
  });
});

describe("POST /v1/promotions/{code}/redemptions", () => {
  it("10 redemptions by one account with different keys at once: one 201, nine 409, credited once", async () => {
    const id = await account("tenfold", 40);
    const responses = await Promise.all(Array.from({ length: 10 }, () => redeem(id)));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    const conflicts = responses.filter((r) => r.status === 409);
    expect(conflicts).toHaveLength(9);
    expect(conflicts.every((r) => r.json.code === "promotion_already_redeemed")).toBe(true);
    expect(await balance(id)).toMatchObject({ settled: 80 });
  });

  it("a promotion capped at 1 redeemed by 20 accounts at once: one 201, nineteen 422 promotion_inactive", async () => {
    const created = await t.call("POST", "/v1/promotions", {
      body: { code: "FIRST-ONLY", maxRedemptions: 1 },
    });
    expect(created.status).toBe(201);
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => account(`cap-${i}`, 10)));
    const responses = await Promise.all(ids.map((id) => redeem(id, "FIRST-ONLY")));
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
    const refused = responses.filter((r) => r.status === 422);
    expect(refused).toHaveLength(19);
    expect(refused.every((r) => r.json.code === "promotion_inactive")).toBe(true);
    const promotion = await t.call("GET", "/v1/promotions/FIRST-ONLY", { token: SERVICE });
    expect(promotion.json.redemptions).toBe(1);
    const settled = await Promise.all(ids.map(async (id) => (await balance(id)).settled));
    expect(settled.sort((a, b) => a - b)).toEqual([...Array(19).fill(10), 20]);
  });

  it("outside its window, by the database clock: 422 promotion_inactive", async () => {
    const now = (await dbNow(t.db.db)).getTime();
    const iso = (ms: number) => new Date(now + ms).toISOString();
    const windows = [
      { code: "NOT-YET", startsAt: iso(3_600_000) },
      { code: "ALL-OVER", endsAt: iso(-1000) },
      { code: "WAS-OPEN", startsAt: iso(-7_200_000), endsAt: iso(-3_600_000) },
      { code: "OPEN-NOW", startsAt: iso(-60_000), endsAt: iso(3_600_000) },
    ];
    for (const body of windows) {
      expect((await t.call("POST", "/v1/promotions", { body })).status).toBe(201);
    }
    const id = await account("windowed", 10);
    for (const code of ["NOT-YET", "ALL-OVER", "WAS-OPEN"]) {
      const r = await redeem(id, code);
      expect(r.status, code).toBe(422);
      expect(r.json.code).toBe("promotion_inactive");
    }
    expect((await redeem(id, "OPEN-NOW")).status).toBe(201);
    expect(await balance(id)).toMatchObject({ settled: 20 });
  });

  it("a credit that would pass 2^53 − 1: 422 balance_limit_exceeded, nothing written", async () => {
    await t.call("POST", "/v1/promotions", { body: { code: "TOO-MUCH" } });
    const id = await account("whale", 2 ** 52 + 1);
    const before = await balance(id);
    const r = await redeem(id, "TOO-MUCH");
    expect(r.status).toBe(422);
    expect(r.json.code).toBe("balance_limit_exceeded");
    expect(await balance(id)).toEqual(before);
    const promotion = await t.call("GET", "/v1/promotions/TOO-MUCH", { token: SERVICE });
    expect(promotion.json.redemptions).toBe(0);
    const rows = await t.db.db.execute(
      sql`SELECT 1 FROM redemptions WHERE promotion_code = 'TOO-MUCH'`,
    );
    expect(rows).toHaveLength(0);
    expect(await entries(id)).toHaveLength(1);
  });

  it("a replay returns the same body with Idempotent-Replayed; the key with another body is refused", async () => {
    const id = await account("replayer", 25);
    const first = await redeem(id, "DOUBLE", "redeem-replay");
    expect(first.status).toBe(201);
    const replay = await redeem(id, "DOUBLE", "redeem-replay");
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await balance(id)).toMatchObject({ settled: 50 });
    const reused = await redeem(id, "TRIPLE", "redeem-replay");
    expect(reused.status).toBe(422);
    expect(reused.json.code).toBe("idempotency_key_reused");
    expect(await balance(id)).toMatchObject({ settled: 50 });
  });

  it("a refusal is stored and replayed too", async () => {
    const id = await account("refused-twice", 5);
    await redeem(id);
    const refused = await redeem(id, "DOUBLE", "refusal-key");
    const replay = await redeem(id, "DOUBLE", "refusal-key");
    expect(refused.status).toBe(409);
    expect(replay.text).toBe(refused.text);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
  });

  it("requires an Idempotency-Key: 400 idempotency_key_required, nothing written", async () => {
    const id = await account("keyless", 10);
    const r = await t.call("POST", "/v1/promotions/DOUBLE/redemptions", {
      token: SERVICE,
      body: { accountId: id },
    });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe("idempotency_key_required");
    expect(await balance(id)).toMatchObject({ settled: 10 });
  });

  it("validates the body and the code strictly: 400 invalid_request, nothing written", async () => {
    const id = await account("strict", 10);
    const bodies = [
      { accountId: id, bonus: 1 },
      {},
      { accountId: "@promotions" },
      { accountId: 42 },
      { accountId: "has space" },
    ];
    for (const body of bodies) {
      const r = await t.call("POST", "/v1/promotions/DOUBLE/redemptions", {
        token: SERVICE,
        key: key("bad"),
        body,
      });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.code).toBe("invalid_request");
    }
    for (const code of ["ab", "double"]) {
      const r = await redeem(id, code);
      expect(r.status).toBe(400);
      expect(r.json.code).toBe("invalid_request");
    }
    const malformed = await t.call("POST", "/v1/promotions/DOUBLE/redemptions", {
      token: SERVICE,
      key: key("bad"),
      raw: "{",
    });
    expect(malformed.status).toBe(400);
    expect(await balance(id)).toMatchObject({ settled: 10 });
    const rows = await t.db.db.execute(sql`SELECT 1 FROM redemptions WHERE account_id = ${id}`);
    expect(rows).toHaveLength(0);
  });

  it("unknown promotion or account: 404", async () => {
    const id = await account("lost", 10);
    const noPromotion = await redeem(id, "UNKNOWN");
    expect(noPromotion.status).toBe(404);
    expect(noPromotion.json.code).toBe("promotion_not_found");
    const noAccount = await redeem("ghost");
    expect(noAccount.status).toBe(404);
    expect(noAccount.json.code).toBe("account_not_found");
  });

  it("an account with nothing settled: 201 with credited 0 and no transaction", async () => {
    const id = await account("penniless", 0);
    const r = await redeem(id);
    expect(r.status).toBe(201);
    expect(r.json.redemption).toMatchObject({ basis: 0, credited: 0, transactionId: null });
    expect(r.json.account).toMatchObject({ settled: 0, held: 0, available: 0 });
  });
});
