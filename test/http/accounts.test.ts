import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe("accounts", () => {
  it("opens an account and reads its balances", async () => {
    const created = await t.call("POST", "/v1/accounts", {
      token: SERVICE,
      body: { id: "carol", metadata: { tier: "gold" } },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      id: "carol",
      settled: 0,
      held: 0,
      available: 0,
      metadata: { tier: "gold" },
    });
    const read = await t.call("GET", "/v1/accounts/carol", { token: SERVICE });
    expect(read.status).toBe(200);
    expect(read.json.createdAt).toBe(created.json.createdAt);
  });

  it("credits from @issuance and lists entries newest first", async () => {
    await t.call("POST", "/v1/accounts", { token: SERVICE, body: { id: "dave" } });
    for (const [i, amount] of [5, 7, 11].entries()) {
      const r = await t.call("POST", "/v1/accounts/dave/credits", {
        key: `dave-${i}`,
        body: { amount },
      });
      expect(r.status).toBe(201);
    }
    const page1 = await t.call("GET", "/v1/accounts/dave/entries?limit=2", { token: SERVICE });
    expect(
      page1.json.data.map((e: { seq: number; amount: number; settledAfter: number }) => [
        e.seq,
        e.amount,
        e.settledAfter,
      ]),
    ).toEqual([
      [3, 11, 23],
      [2, 7, 12],
    ]);
    const page2 = await t.call(
      "GET",
      `/v1/accounts/dave/entries?limit=2&cursor=${page1.json.nextCursor}`,
      { token: SERVICE },
    );
    expect(page2.json.data.map((e: { seq: number }) => e.seq)).toEqual([1]);
    expect(page2.json.nextCursor).toBeNull();
    const issuance = await t.call("GET", "/v1/accounts/@issuance");
    expect(issuance.json.settled).toBe(-23);
  });
});
