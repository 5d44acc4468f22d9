import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { encode } from "../helpers/fuzz-arbitraries.ts";
import { Checker, runParameters } from "../helpers/fuzz-checker.ts";
import {
  label,
  ROUTE_NAMES,
  ROUTES,
  type RouteName,
  validIdempotencyKey,
} from "../helpers/fuzz-contract.ts";
import {
  accountIdShape,
  badAuth,
  badKey,
  codeShape,
  contentType,
  goodAuth,
  goodKey,
  headerValue,
  junkSegment,
  type Parts,
  query,
  segment,
  uuidLike,
  wire,
} from "../helpers/fuzz-requests.ts";
import { type Seeded, seed } from "../helpers/fuzz-seed.ts";

/**
 * Bad-input fuzzing of everything but the body (issue 5): ids and codes in the path, query
 * strings of the list routes, and headers (Authorization, Idempotency-Key, Content-Type and
 * others) on every route, around otherwise valid requests. The Checker holds each answer to
 * the contract: never 5xx, 4xx as problem+json with a contract code, nothing written by a 4xx.
 */

const PATH_RUNS = 50;
const QUERY_RUNS = 100;
const HEADER_RUNS = 40;

let t: TestApp;
let s: Seeded;
let checker: Checker;
beforeAll(async () => {
  t = await createTestApp();
  s = await seed(t);
  checker = new Checker(t);
  await checker.start();
});
afterAll(() => t?.close());

const users = () => s.accounts.filter((id) => !id.startsWith("@"));

/** The path parameter of each route: the rows it may hit, and its well-formed shape. */
function param(name: RouteName): { known: string[]; shape: fc.Arbitrary<string> } | undefined {
  switch (name) {
    case "credit":
    case "adjust":
      return { known: users(), shape: accountIdShape };
    case "getAccount":
    case "listEntries":
    case "listHolds":
      return { known: s.accounts, shape: accountIdShape };
    case "getHold":
    case "settle":
    case "release":
    case "refund":
    case "listRefunds":
      return { known: s.holds, shape: uuidLike };
    case "getPromotion":
    case "redeem":
      return { known: s.codes, shape: codeShape };
    default:
      return undefined;
  }
}

/** A body the route accepts, so that what is fuzzed elsewhere decides the answer. */
function validBody(name: RouteName): fc.Arbitrary<string | undefined> {
  const json = <T>(arb: fc.Arbitrary<T>) => arb.map((v) => JSON.stringify(v));
  const user = fc.constantFrom(...users());
  switch (name) {
    case "openAccount":
      return json(fc.record({ id: accountIdShape }));
    case "credit":
      return json(fc.record({ amount: fc.integer({ min: 1, max: 100 }) }));
    case "purchase":
      return json(fc.record({ accountId: user, amount: fc.integer({ min: 1, max: 20 }) }));
    case "settle":
      return fc.constantFrom(undefined, "{}", '{"amount":1}');
    case "release":
      return fc.constantFrom(undefined, "{}", '{"reason":"fuzz"}');
    case "refund":
      return fc.constantFrom(undefined, "{}", '{"amount":1}', '{"reason":"fuzz"}');
    case "adjust":
      return json(
        fc.record({ amount: fc.integer({ min: -5, max: 5 }), reason: fc.constant("fuzz") }),
      );
    case "createPromotion":
      return json(fc.record({ code: codeShape }));
    case "redeem":
      return json(fc.record({ accountId: user }));
    default:
      return fc.constant(undefined);
  }
}

const pathOf = (name: RouteName, id: string) => ROUTES[name].template.replace("{}", id);
const tokenOf = (authorization: string | undefined) =>
  authorization === `Bearer ${ADMIN}`
    ? ADMIN
    : authorization === `Bearer ${SERVICE}`
      ? SERVICE
      : undefined;

function decoded(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

async function run(
  name: RouteName,
  parts: fc.Arbitrary<Parts & { id?: string }>,
  runs: number,
  oracle?: (p: Parts & { id?: string }, status: number) => void,
) {
  const route = ROUTES[name];
  await fc.assert(
    fc.asyncProperty(parts, async (p) => {
      const { status } = await checker.check(name, wire(route.method, p));
      const token = tokenOf(p.auth);
      // The service token never reads system accounts nor uses an admin endpoint.
      if (token === SERVICE && (route.admin || decoded(p.id ?? "")?.startsWith("@"))) {
        expect(status, "the service token is refused here").toBeGreaterThanOrEqual(400);
      }
      oracle?.(p, status);
    }),
    runParameters(runs),
  );
  if (process.env.FUZZ_STATS)
    console.log(name, JSON.stringify([...(checker.tally.get(name) ?? [])]));
}

describe("fuzzed ids and codes in the path, with both tokens", () => {
  it.each(ROUTE_NAMES.map((n) => [label(n), n] as const))("%s", async (_label, name) => {
    const p = param(name);
    const id = p
      ? segment(p.known, p.shape)
      : // Routes without a parameter: what can follow their path.
        fc.oneof(
          fc.constantFrom(
            "",
            "/",
            "//",
            "?x=1",
            "?__proto__=1",
            "%20",
            "/..",
            "/%2e%2e",
            ";",
            ".json",
          ),
          junkSegment.map((j) => `/${j}`),
        );
    const parts = fc
      .record({
        auth: ROUTES[name].admin
          ? fc.constantFrom(`Bearer ${ADMIN}`, `Bearer ${ADMIN}`, `Bearer ${SERVICE}`)
          : goodAuth,
        key: goodKey,
        id,
        body: validBody(name),
      })
      .map((r) => ({
        ...r,
        path: p ? pathOf(name, r.id) : `${ROUTES[name].template}${r.id}`,
        contentType: r.body === undefined ? undefined : "application/json",
      }));
    await run(name, parts, PATH_RUNS);
    expect(
      checker.count(name, (st) => st >= 400),
      "some ids were refused",
    ).toBeGreaterThan(0);
  });
});

describe("fuzzed query strings on the list routes", () => {
  it.each([
    [label("listEntries"), "listEntries"],
    [label("listHolds"), "listHolds"],
  ] as const)("%s", async (_label, name) => {
    const real = name === "listEntries" ? s.entryCursors : s.holdCursors;
    const known = ["alice", "bob", "@issuance"];
    const parts = fc
      .record({ auth: goodAuth, id: fc.constantFrom(...known), query: query(real) })
      .map((r) => ({ auth: r.auth, id: r.id, path: `${pathOf(name, encode(r.id))}${r.query}` }));
    await run(name, parts, QUERY_RUNS);
    expect(
      checker.count(name, (st) => st === 200),
      "some queries were answered",
    ).toBeGreaterThan(0);
    expect(
      checker.count(name, (st) => st === 400),
      "some queries were refused",
    ).toBeGreaterThan(0);
  });
});

describe("fuzzed headers: Authorization, Idempotency-Key, Content-Type and others", () => {
  it.each(ROUTE_NAMES.map((n) => [label(n), n] as const))("%s", async (_label, name) => {
    const route = ROUTES[name];
    const p = param(name);
    const extraHeader: fc.Arbitrary<Record<string, string>> = fc.oneof(
      fc.constant({}),
      headerValue.map((v) => ({ "x-request-id": v })),
      fc.constantFrom<Record<string, string>>(
        { accept: "text/html" },
        { accept: "application/xml" },
        { "x-http-method-override": "DELETE" },
        { "content-encoding": "gzip" },
        { "accept-charset": "utf-16" },
        { cookie: "role=admin" },
      ),
    );
    const parts = fc
      .record({
        auth: fc.oneof({ weight: 3, arbitrary: goodAuth }, { weight: 1, arbitrary: badAuth }),
        key: fc.oneof(fc.constant(undefined), goodKey, badKey, badKey),
        contentType,
        extra: extraHeader,
        id: p ? fc.constantFrom(...p.known) : fc.constant(""),
        body: validBody(name),
      })
      .map((r) => ({ ...r, path: p ? pathOf(name, encode(r.id)) : route.template }));
    await run(name, parts, HEADER_RUNS, (r, status) => {
      const token = tokenOf(r.auth);
      if (token === undefined) {
        expect(status, "a refused Authorization is 401").toBe(401);
        return;
      }
      if (route.admin && token === SERVICE) {
        expect([400, 403], "the service token on an admin endpoint").toContain(status);
        return;
      }
      const required = ["credit", "purchase", "redeem"].includes(name);
      const badKeyGiven = r.key !== undefined && !validIdempotencyKey(r.key);
      if (route.method === "POST" && (badKeyGiven || (required && r.key === undefined))) {
        expect(status, "a missing or malformed Idempotency-Key is 400").toBe(400);
      }
    });
  });
});
