import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { type ContractResponse, expectContract, unreported } from "../helpers/contract.ts";
import { fundedAccount } from "../helpers/ledger.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await fundedAccount(t.db.db, "ct-alice", 100);
});
afterAll(async () => {
  await t.close();
});

const REQUEST_ID = { "x-request-id": "r-1" };

const response = (
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  type = status >= 400 ? "application/problem+json" : "application/json",
): ContractResponse => ({
  status,
  headers: new Headers({ "content-type": type, ...REQUEST_ID, ...headers }),
  text: JSON.stringify(body),
});

const account = {
  id: "alice",
  settled: 50,
  held: 20,
  available: 30,
  metadata: null,
  createdAt: "2026-11-23T18:00:00.000Z",
};
const problem = (status: number, code: string) => ({
  type: `https://holdfast.dev/errors/${code}`,
  title: "x",
  status,
  detail: "x",
  code,
  requestId: "r-1",
});

async function refused(method: string, url: string, res: ContractResponse) {
  const error = await expectContract(method, url, res).then(
    () => undefined,
    (e: Error) => e.message,
  );
  unreported.splice(0);
  return error;
}

describe("the contract check (every response a test receives is checked)", () => {
  it("accepts a declared response: status, body, headers", async () => {
    await expectContract("GET", "/v1/accounts/alice", response(200, account));
    await expectContract(
      "POST",
      "/v1/purchases",
      response(422, problem(422, "insufficient_funds"), { "idempotent-replayed": "true" }),
    );
  });

  it("refuses an undeclared status, a body off its schema and an undeclared header", async () => {
    expect(await refused("GET", "/v1/accounts/alice", response(418, problem(418, "x")))).toMatch(
      /status 418 is not declared/,
    );
    expect(
      await refused("GET", "/v1/accounts/alice", response(200, { ...account, metadata: 5 })),
    ).toMatch(/body\/metadata must be object,null/);
    expect(
      await refused("GET", "/v1/accounts/alice", response(404, problem(404, "hold_not_found"))),
    ).toMatch(/body\/code must be equal to one of the allowed values/);
    expect(
      await refused("GET", "/v1/accounts/alice", response(200, account, { "x-debug": "1" })),
    ).toMatch(/header x-debug is not declared/);
    expect(
      await refused("GET", "/v1/accounts/alice", {
        ...response(200, account),
        headers: new Headers({ "content-type": "application/json" }),
      }),
    ).toMatch(/required header x-request-id is missing/);
    expect(
      await refused("GET", "/v1/accounts/alice", response(200, account, {}, "text/plain")),
    ).toMatch(/content-type text\/plain is not declared/);
  });

  it("holds paths and methods outside the document to what its description says", async () => {
    await expectContract("GET", "/nowhere", response(404, problem(404, "not_found")));
    await expectContract(
      "PUT",
      "/v1/accounts/alice",
      response(405, problem(405, "method_not_allowed"), { allow: "GET, HEAD" }),
    );
    expect(
      await refused(
        "PUT",
        "/v1/accounts/alice",
        response(405, problem(405, "method_not_allowed"), { allow: "GET, PUT" }),
      ),
    ).toMatch(/Allow GET, PUT differs/);
    expect(await refused("GET", "/nowhere", response(200, {}))).toMatch(/not in the document/);
  });
});

describe("answers the document declares, from the real app", () => {
  const buy = (key: string) =>
    t.call("POST", "/v1/purchases", {
      token: SERVICE,
      key,
      body: { accountId: "ct-alice", amount: 10 },
    });

  it("settle and release: 413 over 64 KiB, 422 idempotency_key_reused, replays marked", async () => {
    const { json } = await buy("ct-buy-1");
    const big = JSON.stringify({ reason: "x".repeat(70_000) });
    for (const verb of ["settle", "release"]) {
      const r = await t.call("POST", `/v1/holds/${json.hold.id}/${verb}`, {
        token: SERVICE,
        raw: big,
      });
      expect([r.status, r.json.code]).toEqual([413, "payload_too_large"]);
    }
    const release = (reason: string) =>
      t.call("POST", `/v1/holds/${json.hold.id}/release`, {
        token: SERVICE,
        key: "ct-release-1",
        body: { reason },
      });
    expect((await release("out of stock")).json.status).toBe("released");
    const replay = await release("out of stock");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const reused = await release("changed my mind");
    expect([reused.status, reused.json.code]).toEqual([422, "idempotency_key_reused"]);
    const settle = await t.call("POST", `/v1/holds/${json.hold.id}/settle`, { token: SERVICE });
    expect([settle.status, settle.json.code]).toEqual([409, "hold_not_pending"]);
  });

  it("401 with WWW-Authenticate, 405 with Allow, 404 off the document", async () => {
    const anonymous = await t.call("GET", "/v1/accounts/ct-alice", { token: null });
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Bearer /);
    const put = await t.call("PUT", "/v1/holds/019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50", {
      token: SERVICE,
    });
    expect(put.status).toBe(405);
    const anonymousWrongMethod = await t.call("POST", "/v1/holds/settle", { token: null });
    expect(anonymousWrongMethod.status).toBe(401);
    expect((await t.call("GET", "/v2/nothing", { token: null })).status).toBe(404);
  });
});
