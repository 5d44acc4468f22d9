import fc from "fast-check";
import { ADMIN, SERVICE } from "./app.ts";
import { encode, nastyString } from "./fuzz-arbitraries.ts";
import type { Body } from "./fuzz-bodies.ts";
import type { WireRequest } from "./fuzz-checker.ts";
import { validIdempotencyKey } from "./fuzz-contract.ts";

const char = (code: number) => String.fromCharCode(code);

// ---- headers -------------------------------------------------------------------------------

/** Any byte a header value may carry (Latin-1 but NUL, CR and LF, which fetch refuses). */
const headerChar = fc
  .integer({ min: 1, max: 0xff })
  .filter((c) => c !== 10 && c !== 13)
  .map(char);
/** Any header value fetch can send. */
export const headerValue = fc.string({ unit: headerChar, maxLength: 80 });
const printableAscii = fc.integer({ min: 0x20, max: 0x7e }).map(char);

export const goodKey = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: printableAscii, minLength: 1, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: printableAscii, minLength: 250, maxLength: 255 }) },
  // A small pool, so that keys come back with the same or another request.
  { weight: 2, arbitrary: fc.constantFrom("fuzz-1", "fuzz-2", "fuzz-3") },
);

export const badKey = fc
  .oneof(
    fc.constantFrom("", " ", "\t", "  \t "),
    fc.integer({ min: 256, max: 2000 }).map((n) => "k".repeat(n)),
    fc
      .tuple(
        fc.string({ unit: printableAscii, maxLength: 8 }),
        fc.oneof(
          fc.integer({ min: 0x80, max: 0xff }).map(char),
          fc.constantFrom("\u0001", "\u001f", "\u007f", "\t"),
        ),
        fc.string({ unit: printableAscii, minLength: 1, maxLength: 8 }),
      )
      .map((parts) => parts.join("")),
    fc.string({ unit: headerChar, minLength: 1, maxLength: 300 }),
  )
  .filter((k) => !validIdempotencyKey(k));

export const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      "",
      "text/plain",
      "application/json; charset=utf-8",
      "application/json;charset=utf-16",
      "APPLICATION/JSON",
      "application/vnd.api+json",
      "application/problem+json",
      "application/jsonx",
      "application/json; foo",
      "application/json, text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "*/*",
      "application/*",
      "text/json",
      "application/json\u00ff",
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: headerChar, maxLength: 40 }) },
);

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** Authorization values that the contract refuses: no header, another scheme, a wrong token. */
export const badAuth: fc.Arbitrary<string | undefined> = fc
  .oneof(
    fc.constantFrom(
      undefined,
      "",
      "Bearer",
      "Bearer ",
      basic("admin", ADMIN),
      basic("service", SERVICE),
      ADMIN,
      `Token ${ADMIN}`,
      `Bearer ${ADMIN}x`,
      `Bearer ${ADMIN.slice(0, -1)}`,
      `Bearer ${ADMIN} ${SERVICE}`,
      `Bearer ${ADMIN.toUpperCase()}`,
      `Bearer ${SERVICE}\u00e9`,
      `Bearer "${ADMIN}"`,
      "Bearer null",
      `Bearer ${"a".repeat(10_000)}`,
    ),
    fc.string({ unit: headerChar, maxLength: 80 }).map((s) => `Bearer ${s}`),
    fc.string({ unit: headerChar, maxLength: 80 }),
  )
  .filter(
    (v) => v === undefined || ![ADMIN, SERVICE].includes(v.replace(/^Bearer\s+/i, "").trim()),
  );

export const goodAuth = fc.constantFrom(`Bearer ${ADMIN}`, `Bearer ${SERVICE}`);

// ---- paths and queries ---------------------------------------------------------------------

/** Path segments no route accepts as an id or code, already percent-encoded or left raw. */
export const junkSegment: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: nastyString.map(encode) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "",
      "..",
      ".",
      "%2e%2e",
      "%",
      "%zz",
      "%00",
      "%2F",
      "a%2Fb",
      "%C0%AF",
      "%ED%A0%80",
      "%FF",
      "%E0%A4%A",
      "%u0041",
      "@",
      "%40",
      "@@",
      "@ISSUANCE",
      "@issuance%00",
      "alice%20",
      "alice%0A",
      "alice;x=1",
      "alice%27%20OR%20%271%27%3D%271",
      "alice'--",
      "alice/..",
      "alice/extra",
      "a".repeat(65),
      "a".repeat(5000),
      "SPRING%00",
      "spring",
    ),
  },
);

/** A segment that is mostly one of `known` (existing rows), sometimes well-formed but unknown. */
export const segment = (known: string[], wellFormed: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...known).map(encode) },
    { weight: 2, arbitrary: wellFormed.map(encode) },
    { weight: 3, arbitrary: junkSegment },
  );

export const accountIdShape = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
export const codeShape = fc.stringMatching(/^[A-Z0-9_-]{3,32}$/);

export const uuidLike: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.uuid() },
  fc
    .tuple(fc.uuid(), fc.constantFrom("upper", "braces", "bare", "long", "short", "urn", "space"))
    .map(([u, how]) => {
      switch (how) {
        case "upper":
          return u.toUpperCase();
        case "braces":
          return `{${u}}`;
        case "bare":
          return u.replaceAll("-", "");
        case "long":
          return `${u}0`;
        case "short":
          return u.slice(0, -1);
        case "urn":
          return `urn:uuid:${u}`;
        default:
          return ` ${u}`;
      }
    }),
  fc.constantFrom("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
);

const queryKey = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom("limit", "cursor", "status") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "offset",
      "LIMIT",
      "limit[]",
      "__proto__",
      "constructor",
      "",
      "cursor ",
    ),
  },
  { weight: 1, arbitrary: nastyString },
);

/** Cursors of every kind: garbage, ours wrapped around junk, and `real` ones from this database. */
export const cursor = (real: string[]) =>
  fc.oneof(
    fc.base64String({ maxLength: 40 }),
    fc
      .oneof(
        fc.integer().map(String),
        fc.constantFrom("0", "-1", "1e5", "9999999999999999", "99999999999999999999"),
        fc.uuid(),
        nastyString,
      )
      .map((p) => Buffer.from(`c1:${p}`).toString("base64url")),
    fc.constantFrom(...real),
  );

const queryValue = (real: string[]) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "",
        "0",
        "1",
        "50",
        "200",
        "201",
        "-1",
        "-0",
        "1.5",
        "1e2",
        "0x10",
        " 5",
        "NaN",
        "Infinity",
        "9007199254740993",
        "١٢",
        "pending",
        "settled",
        "released",
        "expired",
        "PENDING",
        "all",
        "null",
      ),
    },
    { weight: 2, arbitrary: cursor(real) },
    { weight: 1, arbitrary: nastyString },
  );

/** A query string (with its `?`), or none: repeated, unknown and malformed parameters. */
export const query = (real: string[]) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant("") },
    {
      weight: 6,
      arbitrary: fc
        .array(fc.tuple(queryKey, queryValue(real)), { minLength: 1, maxLength: 4 })
        .map((pairs) => `?${pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&")}`),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "?",
        "?&&",
        "?limit",
        "?limit==5",
        "?=5",
        "?limit=%",
        "?limit=%ZZ",
        "?limit=5;cursor=x",
        "?limit=5&limit=6",
        "?status=pending&status=settled",
        "?cursor=&cursor=",
        "?limit=%00",
      ),
    },
  );

// ---- requests ------------------------------------------------------------------------------

export interface Parts {
  auth: string | undefined;
  key?: string | undefined;
  contentType?: string | undefined;
  path: string;
  body?: Body;
  /** Any other headers, set first. */
  extra?: Record<string, string>;
}

export function wire(method: "GET" | "POST", parts: Parts): WireRequest {
  const headers: Record<string, string> = { ...parts.extra };
  if (parts.auth !== undefined) headers.authorization = parts.auth;
  if (parts.key !== undefined) headers["idempotency-key"] = parts.key;
  if (parts.contentType !== undefined) headers["content-type"] = parts.contentType;
  return { method, path: parts.path, headers, body: method === "GET" ? undefined : parts.body };
}

/** Mostly a valid token of either role; now and then a refused Authorization. */
export const auth = fc.oneof({ weight: 9, arbitrary: goodAuth }, { weight: 1, arbitrary: badAuth });

/** Mostly a valid key, sometimes none or a refused one. */
export const key = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 6, arbitrary: goodKey },
  { weight: 1, arbitrary: badKey },
);
