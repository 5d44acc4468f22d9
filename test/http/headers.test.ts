import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { fundedAccount } from "../helpers/ledger.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await fundedAccount(t.db.db, "hdr-alice", 50);
});
afterAll(async () => {
  await t.close();
});

describe("response headers and methods", () => {
  it("every response carries X-Content-Type-Options: nosniff: success, problem, health, docs", async () => {
    const responses = await Promise.all([
      t.call("GET", "/v1/accounts/hdr-alice", { token: SERVICE }),
      t.call("GET", "/v1/accounts/hdr-nobody", { token: SERVICE }),
      t.call("GET", "/v1/accounts/hdr-alice", { token: null }),
      t.call("GET", "/healthz", { token: null }),
      t.call("GET", "/openapi.json", { token: null }),
      t.call("GET", "/no/such/route", { token: null }),
    ]);
    expect(responses.map((r) => r.status)).toEqual([200, 404, 401, 200, 200, 404]);
    for (const r of responses) expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("a wrong method on a known path is 405 method_not_allowed with Allow; an unknown path stays 404", async () => {
    const put = await t.call("PUT", "/v1/accounts/hdr-alice", { token: SERVICE, body: {} });
    expect(put.status).toBe(405);
    expect(put.headers.get("content-type")).toBe("application/problem+json");
    expect(put.json).toMatchObject({ code: "method_not_allowed", status: 405 });
    expect(put.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "HEAD"]);

    const del = await t.call("DELETE", "/v1/purchases", { token: SERVICE });
    expect(del.status).toBe(405);
    expect(del.headers.get("allow")).toBe("POST");

    const missing = await t.call("GET", "/v1/nothing-here", { token: SERVICE });
    expect([missing.status, missing.json.code]).toEqual([404, "not_found"]);
    const noAccount = await t.call("GET", "/v1/accounts/hdr-nobody", { token: SERVICE });
    expect(noAccount.json.code).toBe("account_not_found");
  });
});
