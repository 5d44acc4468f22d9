import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, createTestApp, type TestApp } from "../helpers/app.ts";
import { Checker } from "../helpers/fuzz-checker.ts";
import type { RouteName } from "../helpers/fuzz-contract.ts";
import { wire } from "../helpers/fuzz-requests.ts";
import { type Seeded, seed } from "../helpers/fuzz-seed.ts";

/**
 * Plain tests beside the fuzzing properties of fuzz.test.ts and fuzz-paths.test.ts: the
 * inputs they found, pinned, and a check that their Checker can see a write at all.
 */

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

describe("the checker itself", () => {
  it("notices a write made while a request is refused", async () => {
    const refused = wire("POST", {
      auth: `Bearer ${ADMIN}`,
      contentType: "application/json",
      path: "/v1/promotions",
      body: "{}",
    });
    await t.db.sql`INSERT INTO promotions (code, multiplier) VALUES ('CANARY', 2)`;
    await expect(checker.check("createPromotion", refused)).rejects.toThrow(
      /\(c\) a 400 wrote nothing/,
    );
    await checker.start();
  });
});

/** Inputs the fuzzer found answering 500 (or altering data on a 2xx), pinned as plain cases. */
describe("regressions found by fuzzing: refused as 400 invalid_request, nothing written", () => {
  const deep = `{"a":${"[".repeat(3000)}1${"]".repeat(3000)}}`;
  const metadata: [string, string][] = [
    ["a value with U+0000", '{"a":"\\u0000"}'],
    ["a key with U+0000", '{"\\u0000":1}'],
    ["a key that is a lone surrogate", '{"\\udf9f":"x"}'],
    ["a value that is a lone surrogate", '{"a":["\\ud800"]}'],
    ["nesting 3000 deep", deep],
  ];
  const hold = () => s.holds[3];
  /** [name, route, path, body, the field `errors` must name] */
  const cases: [string, RouteName, () => string, string, string][] = [
    ...metadata.map(([what, m], i): [string, RouteName, () => string, string, string] => [
      `POST /v1/accounts, metadata with ${what}`,
      "openAccount",
      () => "/v1/accounts",
      `{"id":"regression${i}","metadata":${m}}`,
      "metadata",
    ]),
    [
      "credit reason with U+0000",
      "credit",
      () => "/v1/accounts/alice/credits",
      '{"amount":1,"reason":"a\\u0000b"}',
      "reason",
    ],
    [
      "credit metadata nesting 3000 deep",
      "credit",
      () => "/v1/accounts/alice/credits",
      `{"amount":1,"metadata":${deep}}`,
      "metadata",
    ],
    [
      "purchase orderId U+0000",
      "purchase",
      () => "/v1/purchases",
      '{"accountId":"alice","amount":1,"orderId":"\\u0000"}',
      "orderId",
    ],
    [
      "purchase description with U+0000",
      "purchase",
      () => "/v1/purchases",
      '{"accountId":"alice","amount":1,"description":"x\\u0000"}',
      "description",
    ],
    [
      "purchase orderId a lone surrogate (was stored as U+FFFD)",
      "purchase",
      () => "/v1/purchases",
      '{"accountId":"alice","amount":1,"orderId":"\\ud800"}',
      "orderId",
    ],
    [
      "release reason with U+0000",
      "release",
      () => `/v1/holds/${hold()}/release`,
      '{"reason":"\\u0000"}',
      "reason",
    ],
    [
      "promotion endsAt in year 0000",
      "createPromotion",
      () => "/v1/promotions",
      '{"code":"YEAR0","endsAt":"0000-01-29T00:00:00+00:00"}',
      "endsAt",
    ],
    [
      "promotion endsAt past 9999 in UTC",
      "createPromotion",
      () => "/v1/promotions",
      '{"code":"YEAR10K","endsAt":"9999-12-31T23:59:59-23:59"}',
      "endsAt",
    ],
  ];

  let n = 0;
  const post = (name: RouteName, path: string, body: string) =>
    checker.check(
      name,
      wire("POST", {
        auth: `Bearer ${ADMIN}`,
        key: `regression-${n++}`,
        contentType: "application/json",
        path,
        body,
      }),
    );

  it.each(cases)("%s", async (_label, name, path, body, field) => {
    const { status, json } = await post(name, path(), body);
    expect(status).toBe(400);
    expect(json.code).toBe("invalid_request");
    expect(json.errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it("the first and last years of ISO 8601 in UTC are still accepted", async () => {
    for (const at of ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"]) {
      const code = `Y${at.slice(0, 4)}`;
      const { status, json } = await post(
        "createPromotion",
        "/v1/promotions",
        JSON.stringify({ code, endsAt: at }),
      );
      expect(status).toBe(201);
      expect(json.endsAt).toBe(new Date(at).toISOString());
    }
  });
});
