import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roleForToken } from "../../src/http/auth.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.call("POST", "/v1/accounts", { body: { id: "alice" } });
  await t.call("POST", "/v1/accounts/alice/credits", { key: "seed-alice", body: { amount: 50 } });
});
afterAll(() => t.close());

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

async function aliceSettled(): Promise<number> {
  const [row] = await t.db.sql<{ settled: number }[]>`
    SELECT settled FROM accounts WHERE id = 'alice'`;
  return row!.settled;
}

describe("authentication on /v1", () => {
  it("no Authorization header: 401 unauthorized problem+json with a Bearer challenge", async () => {
    const r = await t.call("GET", "/v1/accounts/alice", { token: null });
    expect(r.status).toBe(401);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="holdfast"');
    expect(r.json).toMatchObject({
      type: "https://holdfast.dev/errors/unauthorized",
      status: 401,
      code: "unauthorized",
    });
    expect(r.json.requestId).toEqual(expect.any(String));
    expect(r.json.requestId.length).toBeGreaterThan(0);
  });

  it.each([
    ["an unknown token", "Bearer not-a-real-token-at-all"],
    ["the admin token with one character changed", `Bearer ${ADMIN.slice(0, -1)}X`],
    ["a prefix of the admin token", `Bearer ${ADMIN.slice(0, 10)}`],
    ["an empty bearer", "Bearer "],
    ["a bearer followed by two words", `Bearer ${ADMIN} extra`],
    ["the token without a scheme", ADMIN],
  ])("%s: 401 unauthorized", async (_name, authorization) => {
    const r = await t.call("GET", "/v1/accounts/alice", {
      token: null,
      headers: { authorization },
    });
    expect(r.status).toBe(401);
    expect(r.json.code).toBe("unauthorized");
  });

  it("the bearer scheme is case-insensitive", async () => {
    const r = await t.call("GET", "/v1/accounts/alice", {
      token: null,
      headers: { authorization: `bearer ${SERVICE}` },
    });
    expect(r.status).toBe(200);
    expect(r.json.id).toBe("alice");
  });

  it("HTTP Basic is not accepted on /v1 routes, even with the admin token as password", async () => {
    const r = await t.call("GET", "/v1/accounts/alice", {
      token: null,
      headers: { authorization: basic("admin", ADMIN) },
    });
    expect(r.status).toBe(401);
    expect(r.json.code).toBe("unauthorized");
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="holdfast"');
  });

  it("an unauthenticated write writes nothing", async () => {
    const r = await t.call("POST", "/v1/accounts/alice/credits", {
      token: null,
      key: "no-token-credit",
      body: { amount: 5 },
    });
    expect(r.status).toBe(401);
    expect(await aliceSettled()).toBe(50);
  });
});

describe("roles", () => {
  it("the service token on POST /v1/accounts/{id}/credits: 403 forbidden, nothing credited", async () => {
    const r = await t.call("POST", "/v1/accounts/alice/credits", {
      token: SERVICE,
      key: "service-credit",
      body: { amount: 5 },
    });
    expect(r.status).toBe(403);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.json).toMatchObject({ status: 403, code: "forbidden" });
    expect(await aliceSettled()).toBe(50);
    const [keys] = await t.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM idempotency_keys WHERE key = 'service-credit'`;
    expect(keys!.n).toBe(0);
  });

  it("the service token opens and reads user accounts", async () => {
    const opened = await t.call("POST", "/v1/accounts", { token: SERVICE, body: { id: "sam" } });
    expect(opened.status).toBe(201);
    const read = await t.call("GET", "/v1/accounts/sam", { token: SERVICE });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: "sam", settled: 0, held: 0, available: 0 });
  });

  it("system accounts: the service token gets 403, the admin token reads them", async () => {
    const asService = await t.call("GET", "/v1/accounts/@issuance", { token: SERVICE });
    expect(asService.status).toBe(403);
    expect(asService.json.code).toBe("forbidden");

    const entriesAsService = await t.call("GET", "/v1/accounts/@issuance/entries", {
      token: SERVICE,
    });
    expect(entriesAsService.status).toBe(403);
    expect(entriesAsService.json.code).toBe("forbidden");

    const asAdmin = await t.call("GET", "/v1/accounts/@issuance", { token: ADMIN });
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.json).toMatchObject({ id: "@issuance", settled: -50, held: 0, available: -50 });
  });
});

describe("operational endpoints need no token", () => {
  it("GET /healthz", async () => {
    const r = await t.call("GET", "/healthz", { token: null });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: "ok" });
  });

  it("GET /readyz", async () => {
    const r = await t.call("GET", "/readyz", { token: null });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: "ok", postgres: "ok", redis: "ok" });
  });

  it("GET /metrics", async () => {
    const r = await t.call("GET", "/metrics", { token: null });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(r.text).toContain("# TYPE holdfast_http_request_duration_seconds histogram");
  });

  it("GET /openapi.json", async () => {
    const r = await t.call("GET", "/openapi.json", { token: null });
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe("3.1.0");
    expect(Object.keys(r.json.paths)).toEqual(
      expect.arrayContaining([
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/entries",
        "/v1/accounts/{id}/credits",
      ]),
    );
  });
});

describe("roleForToken", () => {
  const tokens = { admin: ADMIN, service: SERVICE };

  it("maps each configured token to its role", () => {
    expect(roleForToken(ADMIN, tokens)).toBe("admin");
    expect(roleForToken(SERVICE, tokens)).toBe("service");
  });

  it.each([
    ["empty", ""],
    ["unknown", "some-other-token-0123456789"],
    ["admin prefix", ADMIN.slice(0, -1)],
    ["admin with a suffix", `${ADMIN}x`],
    ["admin upper-cased", ADMIN.toUpperCase()],
    ["admin with whitespace", ` ${ADMIN}`],
  ])("%s token: no role", (_name, token) => {
    expect(roleForToken(token, tokens)).toBeUndefined();
  });
});
