import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, createTestApp, type TestApp } from "../helpers/app.ts";
import {
  encode,
  instant,
  type Json,
  junk,
  longString,
  metadata,
  nastyMetadata,
  nastyNumber,
  nastyString,
  nastyText,
  RawJson,
  validMetadata,
} from "../helpers/fuzz-arbitraries.ts";
import { body, type Field, objectBodies } from "../helpers/fuzz-bodies.ts";
import { Checker, runParameters } from "../helpers/fuzz-checker.ts";
import { ROUTES, type RouteName } from "../helpers/fuzz-contract.ts";
import {
  accountIdShape,
  auth,
  codeShape,
  contentType,
  goodAuth,
  goodKey,
  key,
  type Parts,
  segment,
  uuidLike,
  wire,
} from "../helpers/fuzz-requests.ts";
import { type Seeded, seed } from "../helpers/fuzz-seed.ts";

/**
 * Bad-input fuzzing of request bodies (issue 5): every POST route gets bodies of wrong types,
 * near misses, junk, extra and missing members mixed with valid ones, deep nesting, broken
 * JSON and raw bytes. The Checker holds each answer to the contract: never 5xx, 4xx as
 * problem+json with a contract code, nothing written by a 4xx.
 *
 * On failure fast-check prints `{ seed, path }`: FC_SEED=… FC_PATH=… replays it. FUZZ_STATS=1
 * prints the statuses each route answered, to see what the generators reach.
 */

const RUNS = 150;

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

const oneOf = (...values: Json[]) => fc.constantFrom(...values);
const text = (max: number): Field => ({
  valid: nastyText(max),
  invalid: fc.oneof(
    oneOf("", null, 5, true, ["x"], {}),
    longString,
    fc.constant("x".repeat(max + 1)),
  ),
});
const amount = (max = 50): Field => ({
  valid: fc.oneof(fc.integer({ min: 1, max }), oneOf(2 ** 53 - 1)),
  invalid: fc.oneof(nastyNumber, oneOf("5", null, true, [5], { amount: 5 }, "1e2")),
});
const meta: Field = { valid: fc.oneof(validMetadata, nastyMetadata), invalid: metadata };
const accountId = (): Field => ({
  valid: fc.oneof(fc.constantFrom(...s.accounts.slice(0, 3)), accountIdShape),
  invalid: fc.oneof(nastyString, oneOf("@issuance", "@x", "a".repeat(65), 42, null, ["alice"])),
});

/** The JSON a generated body parses to, normalised as a JSON round trip would (Infinity → null). */
// biome-ignore lint/suspicious/noExplicitAny: generated bodies are arbitrary JSON
function sent(parts: Parts): any {
  if (typeof parts.body !== "string") return undefined;
  try {
    return JSON.parse(JSON.stringify(JSON.parse(parts.body)));
  } catch {
    return undefined;
  }
}

/**
 * The metadata a 2xx should echo. zod's record drops a top-level "__proto__" member on purpose
 * (assigning it would replace the prototype), so the API stores `{}` for `{"__proto__": …}`:
 * a known gap, reported with issue 5, not re-found on every run.
 */
// biome-ignore lint/suspicious/noExplicitAny: see sent()
function echoed(metadata: any): unknown {
  if (metadata === undefined || metadata === null) return null;
  return Object.fromEntries(Object.entries(metadata).filter(([k]) => k !== "__proto__"));
}

interface Shape {
  /** Paths to existing rows, for valid requests. */
  known: fc.Arbitrary<string>;
  /** Paths of any kind, for mutated requests. */
  any: fc.Arbitrary<string>;
  fields: Record<string, Field>;
  required: string[];
}

/**
 * Valid requests with the nastiest values the contract allows (2 in 5), and requests with
 * mutated bodies, content types, keys and tokens (3 in 5).
 */
function requests(name: RouteName, shape: Shape): fc.Arbitrary<Parts> {
  const bodies = objectBodies(shape.fields, shape.required);
  const valid = fc.record({
    auth: ROUTES[name].admin ? fc.constant(`Bearer ${ADMIN}`) : goodAuth,
    key: goodKey,
    contentType: fc.constant("application/json"),
    path: shape.known,
    body: bodies.valid,
  });
  const mutated = fc.record({
    auth,
    key,
    contentType,
    path: shape.any,
    body: body(bodies.mutated),
  });
  return fc.oneof({ weight: 2, arbitrary: valid }, { weight: 3, arbitrary: mutated });
}

async function fuzz(
  name: RouteName,
  shape: Shape,
  // biome-ignore lint/suspicious/noExplicitAny: see sent()
  onSuccess?: (input: any, output: any) => void,
) {
  const route = ROUTES[name];
  await fc.assert(
    fc.asyncProperty(requests(name, shape), async (p) => {
      const { status, json } = await checker.check(name, wire(route.method, p));
      if (status < 300 && onSuccess) onSuccess(sent(p), json);
    }),
    runParameters(RUNS),
  );
  if (process.env.FUZZ_STATS)
    console.log(name, JSON.stringify([...(checker.tally.get(name) ?? [])]));
  // The generators must reach past validation, or the properties say little.
  expect(
    checker.count(name, (st) => st === 400),
    "some requests were refused as invalid",
  ).toBeGreaterThan(0);
  expect(
    checker.count(name, (st) => st !== 400),
    "some requests passed validation",
  ).toBeGreaterThan(0);
}

const fixed = (path: string) => ({ known: fc.constant(path), any: fc.constant(path) });
const under = (
  known: string[],
  wellFormed: fc.Arbitrary<string>,
  path: (id: string) => string,
) => ({
  known: fc.constantFrom(...known).map((id) => path(encode(id))),
  any: segment(known, wellFormed).map(path),
});

describe("fuzzed bodies: never 5xx, 4xx is a contract problem and writes nothing", () => {
  it("POST /v1/accounts", async () => {
    await fuzz(
      "openAccount",
      { ...fixed("/v1/accounts"), fields: { id: accountId(), metadata: meta }, required: ["id"] },
      (input, out) =>
        expect(out.metadata, "metadata is stored as sent").toEqual(echoed(input.metadata)),
    );
  });

  it("POST /v1/accounts/{id}/credits", async () => {
    await fuzz("credit", {
      ...under(s.accounts.slice(0, 3), accountIdShape, (id) => `/v1/accounts/${id}/credits`),
      fields: { amount: amount(100), reason: text(500), metadata: meta },
      required: ["amount"],
    });
  });

  it("POST /v1/purchases", async () => {
    await fuzz(
      "purchase",
      {
        ...fixed("/v1/purchases"),
        fields: {
          accountId: accountId(),
          amount: amount(),
          orderId: text(255),
          description: text(1000),
          metadata: meta,
          expiresInSeconds: {
            valid: fc.integer({ min: 1, max: 604_800 }),
            invalid: fc.oneof(nastyNumber, oneOf("900", null, [900])),
          },
        },
        required: ["accountId", "amount"],
      },
      (input, out) => {
        expect(out.hold.metadata, "metadata is stored as sent").toEqual(echoed(input.metadata));
        expect(out.hold.orderId, "orderId is stored as sent").toBe(input.orderId ?? null);
        expect(out.hold.description, "description is stored as sent").toBe(
          input.description ?? null,
        );
      },
    );
  });

  it("POST /v1/holds/{id}/settle", async () => {
    await fuzz("settle", {
      ...under(s.holds, uuidLike, (id) => `/v1/holds/${id}/settle`),
      fields: { amount: amount(6) },
      required: [],
    });
  });

  it("POST /v1/holds/{id}/release", async () => {
    await fuzz("release", {
      ...under(s.holds, uuidLike, (id) => `/v1/holds/${id}/release`),
      fields: { reason: text(500) },
      required: [],
    });
  });

  it("POST /v1/holds/{id}/refunds", async () => {
    await fuzz(
      "refund",
      {
        ...under(s.holds, uuidLike, (id) => `/v1/holds/${id}/refunds`),
        fields: { amount: amount(2), reason: text(500), metadata: meta },
        required: [],
      },
      (input, out) => {
        expect(out.refund.metadata, "metadata is stored as sent").toEqual(echoed(input?.metadata));
        expect(out.hold.refundedAmount).toBeLessThanOrEqual(out.hold.settledAmount);
      },
    );
  });

  it("POST /v1/accounts/{id}/adjustments", async () => {
    await fuzz(
      "adjust",
      {
        ...under(s.accounts.slice(0, 3), accountIdShape, (id) => `/v1/accounts/${id}/adjustments`),
        fields: {
          amount: {
            valid: fc.oneof(
              fc.integer({ min: -20, max: 20 }).filter((n) => n !== 0),
              oneOf(2 ** 53 - 1, -(2 ** 53 - 1)),
            ),
            invalid: fc.oneof(nastyNumber, oneOf(0, -0, "5", null, true, [5], 2 ** 53, -(2 ** 53))),
          },
          reason: text(500),
          metadata: meta,
        },
        required: ["amount", "reason"],
      },
      (input, out) => {
        expect(out.adjustment.amount).toBe(input.amount);
        expect(out.account.available).toBeGreaterThanOrEqual(0);
      },
    );
  });

  it("POST /v1/promotions", async () => {
    const when: Field = { valid: fc.oneof(instant, fc.constant(null)), invalid: junk };
    await fuzz(
      "createPromotion",
      {
        ...fixed("/v1/promotions"),
        fields: {
          code: {
            valid: fc.oneof(codeShape, fc.constantFrom(...s.codes)),
            invalid: fc.oneof(
              nastyString,
              codeShape.map((c) => c.toLowerCase()),
              oneOf("AB", "A".repeat(33), 7),
            ),
          },
          multiplier: {
            valid: fc.integer({ min: 2, max: 10 }),
            invalid: fc.oneof(nastyNumber, oneOf("2")),
          },
          maxRedemptions: {
            valid: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 2 ** 31 - 1 })),
            invalid: fc.oneof(nastyNumber, oneOf("1", new RawJson("2147483648"))),
          },
          startsAt: when,
          endsAt: when,
        },
        required: ["code"],
      },
      (input, out) => {
        for (const f of ["startsAt", "endsAt"] as const) {
          const given = input[f] ?? null;
          expect(out[f] === null ? null : Date.parse(out[f]), `${f} is stored as sent`).toBe(
            given === null ? null : Date.parse(given),
          );
        }
      },
    );
  });

  it("POST /v1/promotions/{code}/redemptions", async () => {
    await fuzz("redeem", {
      ...under(s.codes, codeShape, (code) => `/v1/promotions/${code}/redemptions`),
      fields: { accountId: accountId() },
      required: ["accountId"],
    });
  });
});
