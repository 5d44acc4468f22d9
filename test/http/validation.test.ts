import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await t.call("POST", "/v1/accounts", { token: SERVICE, body: { id: "alice" } });
  await t.call("POST", "/v1/accounts/alice/credits", { key: "seed-alice", body: { amount: 50 } });
});
afterAll(() => t.close());

interface Case {
  name: string;
  method: "GET" | "POST";
  path: string;
  opts: CallOptions;
  status: 400 | 413;
  code: "invalid_request" | "payload_too_large" | "idempotency_key_required";
  /** The field `errors` must name (or a path under it); omitted where no schema ran. */
  field?: string;
}

/** Counts and balances that a bad request must leave exactly as they were. */
async function snapshot() {
  const [row] = await t.db.sql`
    SELECT (SELECT count(DISTINCT id) FROM accounts)::int AS accounts,
           (SELECT count(*) FROM entries)::int AS entries,
           (SELECT count(*) FROM ledger_transactions)::int AS transactions,
           (SELECT count(*) FROM idempotency_keys)::int AS idempotency_keys,
           (SELECT sum(settled) FROM accounts WHERE kind = 'system')::text AS system_settled,
           (SELECT json_build_object('settled', settled, 'held', held, 'lastSeq', last_seq)
              FROM accounts WHERE id = 'alice') AS alice`;
  return row;
}

const credits = (id = "alice") => `/v1/accounts/${encodeURIComponent(id)}/credits`;

const BAD_IDS: [string, string][] = [
  ["SQL injection", "alice'; DROP TABLE accounts;--"],
  ["path traversal", "../etc"],
  ["a space", "a b"],
  ["a literal %00", "%00"],
  ["a NUL character", "\u0000"],
  ["65 characters", `a${"b".repeat(64)}`],
  ["a system id", "@issuance"],
  ["unicode letters", "ålice"],
  ["CJK", "爱丽丝"],
  ["a leading dot", ".alice"],
];

const seventyKb = JSON.stringify({ amount: 5, reason: "x".repeat(70 * 1024) });

let n = 0;
/** A fresh, valid Idempotency-Key per case, so a stored key would show up in the snapshot. */
const key = () => `battery-${n++}`;

const creditBody = (body: unknown, name: string, field: string): Case => ({
  name: `credits: ${name}`,
  method: "POST",
  path: credits(),
  opts: { key: key(), body },
  status: 400,
  code: "invalid_request",
  field,
});

const creditCases: Case[] = [
  creditBody({ amount: -5 }, "negative amount", "amount"),
  creditBody({ amount: 0 }, "zero amount", "amount"),
  creditBody({ amount: 1.5 }, "fractional amount", "amount"),
  creditBody({ amount: "10" }, "amount as a string", "amount"),
  creditBody({ amount: 2 ** 53 }, "amount 2^53", "amount"),
  creditBody({ amount: 1e300 }, "amount 1e300", "amount"),
  creditBody({ amount: null }, "null amount", "amount"),
  creditBody({ amount: true }, "boolean amount", "amount"),
  creditBody({}, "missing amount", "amount"),
  creditBody({ amount: 5, currency: "EUR" }, "an unknown field", "currency"),
  creditBody({ amount: 5, reason: "" }, "an empty reason", "reason"),
  creditBody({ amount: 5, reason: "r".repeat(501) }, "a 501-character reason", "reason"),
  creditBody({ amount: 5, metadata: ["a"] }, "metadata as an array", "metadata"),
  creditBody(
    { amount: 5, metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) },
    "metadata with 51 keys",
    "metadata",
  ),
  creditBody([{ amount: 5 }], "a JSON array body", "json"),
  creditBody("5", "a JSON string body", "json"),
  creditBody(5, "a JSON number body", "json"),
  {
    name: "credits: broken JSON",
    method: "POST",
    path: credits(),
    opts: { key: key(), raw: '{"amount": 5' },
    status: 400,
    code: "invalid_request",
  },
  {
    name: "credits: a 70 KB body",
    method: "POST",
    path: credits(),
    opts: { key: key(), raw: seventyKb },
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "credits: Content-Type text/plain",
    method: "POST",
    path: credits(),
    opts: { key: key(), raw: '{"amount":5}', headers: { "content-type": "text/plain" } },
    status: 400,
    code: "invalid_request",
  },
  {
    name: "credits: no Idempotency-Key",
    method: "POST",
    path: credits(),
    opts: { body: { amount: 5 } },
    status: 400,
    code: "idempotency_key_required",
  },
  ...(
    [
      ["256 characters", "k".repeat(256)],
      ["non-ASCII", "café-1"],
      ["a control character", "a\u0001b"],
      ["DEL", "a\u007fb"],
      ["a tab", "a\tb"],
    ] as const
  ).map(
    ([name, badKey]): Case => ({
      name: `credits: Idempotency-Key with ${name}`,
      method: "POST",
      path: credits(),
      opts: { key: badKey, body: { amount: 5 } },
      status: 400,
      code: "invalid_request",
      field: "Idempotency-Key",
    }),
  ),
  ...BAD_IDS.map(
    ([name, id]): Case => ({
      name: `credits: account id with ${name}`,
      method: "POST",
      path: credits(id),
      opts: { key: key(), body: { amount: 5 } },
      status: 400,
      code: "invalid_request",
      field: "id",
    }),
  ),
];

const openBody = (body: unknown, name: string, field: string): Case => ({
  name: `open account: ${name}`,
  method: "POST",
  path: "/v1/accounts",
  opts: { token: SERVICE, body },
  status: 400,
  code: "invalid_request",
  field,
});

const openCases: Case[] = [
  openBody({}, "missing id", "id"),
  openBody({ id: 42 }, "a numeric id", "id"),
  openBody({ id: null }, "a null id", "id"),
  openBody({ id: "" }, "an empty id", "id"),
  openBody({ id: "zed", balance: 100 }, "an unknown field", "balance"),
  openBody({ id: "zed", metadata: "vip" }, "metadata as a string", "metadata"),
  openBody({ id: "zed", metadata: { "": 1 } }, "metadata with an empty key", "metadata"),
  openBody(["zed"], "a JSON array body", "json"),
  openBody("zed", "a JSON string body", "json"),
  ...BAD_IDS.map(([name, id]) => openBody({ id }, `an id with ${name}`, "id")),
  {
    name: "open account: broken JSON",
    method: "POST",
    path: "/v1/accounts",
    opts: { token: SERVICE, raw: "{id:'zed'}" },
    status: 400,
    code: "invalid_request",
  },
  {
    name: "open account: a 70 KB body",
    method: "POST",
    path: "/v1/accounts",
    opts: {
      token: SERVICE,
      raw: JSON.stringify({ id: "zed", metadata: { x: "y".repeat(70_000) } }),
    },
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "open account: Content-Type text/plain",
    method: "POST",
    path: "/v1/accounts",
    opts: { token: SERVICE, raw: '{"id":"zed"}', headers: { "content-type": "text/plain" } },
    status: 400,
    code: "invalid_request",
  },
  {
    name: "open account: a 256-character Idempotency-Key",
    method: "POST",
    path: "/v1/accounts",
    opts: { token: SERVICE, key: "k".repeat(256), body: { id: "zed" } },
    status: 400,
    code: "invalid_request",
    field: "Idempotency-Key",
  },
];

const entries = (query: string, id = "alice") =>
  `/v1/accounts/${encodeURIComponent(id)}/entries?${query}`;
const notOurCursor = Buffer.from("c1:abc").toString("base64url");

const listCases: Case[] = [
  ...(
    [
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["limit=abc", "limit"],
      ["limit=1.5", "limit"],
      ["cursor=abc", "cursor"],
      ["cursor=!!!", "cursor"],
      [`cursor=${notOurCursor}`, "cursor"],
      ["cursor=", "cursor"],
      ["offset=10", "offset"],
    ] as const
  ).map(
    ([query, field]): Case => ({
      name: `entries: ${query}`,
      method: "GET",
      path: entries(query),
      opts: { token: SERVICE },
      status: 400,
      code: "invalid_request",
      field,
    }),
  ),
  {
    name: "entries: an account id with SQL injection",
    method: "GET",
    path: entries("limit=5", "alice' OR '1'='1"),
    opts: { token: SERVICE },
    status: 400,
    code: "invalid_request",
    field: "id",
  },
];

describe("the bad-input battery", () => {
  let before: Awaited<ReturnType<typeof snapshot>>;
  beforeAll(async () => {
    before = await snapshot();
    expect(before).toMatchObject({ accounts: 5, alice: { settled: 50, held: 0, lastSeq: 1 } });
  });

  it.each([...creditCases, ...openCases, ...listCases])(
    "$name → $status $code",
    async ({ method, path, opts, status, code, field }) => {
      const r = await t.call(method, path, opts);
      expect(r.status).toBe(status);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
      expect(r.json).toMatchObject({
        type: `https://holdfast.dev/errors/${code}`,
        status,
        code,
      });
      expect(r.json.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.headers.get("idempotent-replayed")).toBeNull();
      if (field !== undefined) {
        expect(r.json.errors.length).toBeGreaterThanOrEqual(1);
        const fields: string[] = r.json.errors.map((e: { field: string }) => e.field);
        // A nested failure is reported by its path, e.g. "metadata.<key>".
        expect(fields.some((f) => f === field || f.startsWith(`${field}.`))).toBe(true);
        for (const e of r.json.errors) expect(e.message).toEqual(expect.any(String));
      }
    },
  );

  it("wrote nothing: row counts, system totals and alice's balance are unchanged", async () => {
    expect(await snapshot()).toEqual(before);
  });

  it("no battery key was stored: a valid request with one of its keys takes effect", async () => {
    const r = await t.call("POST", credits(), { key: "battery-0", body: { amount: 5 } });
    expect(r.status).toBe(201);
    expect(r.headers.get("idempotent-replayed")).toBeNull();
    expect(r.json.account).toMatchObject({ id: "alice", settled: 55, available: 55 });
  });
});
