import fc from "fast-check";

/** A JSON token written into the body as is: numbers JSON can spell but JS cannot hold. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** An object as its list of members, so that duplicate and `__proto__` keys reach the wire. */
export class Members {
  constructor(readonly members: [string, Json][]) {}
}

export type Json =
  | null
  | boolean
  | number
  | string
  | RawJson
  | Members
  | Json[]
  | { [key: string]: Json };

export function toJson(value: Json): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof Members) {
    return `{${value.members.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;
  }
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object")
    return toJson(new Members(Object.entries(value)));
  return JSON.stringify(value) ?? "null";
}

const LONE_SURROGATE = /([\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff])/;

/**
 * encodeURIComponent, except that a lone surrogate (which it refuses) is written as the
 * percent-encoded bytes a sloppy UTF-8 encoder would send.
 */
export function encode(text: string): string {
  return text
    .split(LONE_SURROGATE)
    .map((piece, i) => {
      if (i % 2 === 0) return encodeURIComponent(piece);
      const c = piece.charCodeAt(0);
      const bytes = [0xed, 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)];
      return bytes.map((b) => `%${b.toString(16).toUpperCase()}`).join("");
    })
    .join("");
}

// ---- strings and numbers -------------------------------------------------------------------

const char = (code: number) => String.fromCharCode(code);
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map(char);
const controlChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map(char),
  fc.constantFrom("\u007f", "\u0085", "\u2028", "\u2029", "\ufeff", "\u202e", "\u200b", "\ufffe"),
);
const nastyChar = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: controlChar },
  { weight: 1, arbitrary: loneSurrogate },
);

const SPECIAL_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udc00",
  "NaN",
  "Infinity",
  "-0",
  "1e308",
  "0x10",
  "null",
  "true",
  "__proto__",
  "constructor",
  "prototype",
  "'; DROP TABLE accounts;--",
  "' OR '1'='1",
  '" OR 1=1 --',
  "%00",
  "%2e%2e%2f",
  "../../etc/passwd",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log-injection payload, on purpose
  "${jndi:ldap://x}",
  "<script>alert(1)</script>",
  "\u202eevil",
  "ＡＬＩＣＥ",
  "İı",
  "👍🏽",
  "a\u0301",
];

/** Lengths either side of the contract's limits (64, 255, 500, 1000, 64 KiB), and a few big ones. */
const length = fc.oneof(
  fc.constantFrom(63, 64, 65, 254, 255, 256, 499, 500, 501, 999, 1000, 1001, 5000, 70_000),
  fc.integer({ min: 1, max: 3000 }),
);
export const longString = fc
  .tuple(fc.constantFrom("a", "A", "é", "\u0000", "👍", " ", "-"), length)
  .map(([c, n]) => c.repeat(n));

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: nastyChar, maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_STRINGS) },
  { weight: 1, arbitrary: longString },
);

/** Strings the contract accepts by length (1 to `max`), made of the nastiest characters. */
export const nastyText = (max: number): fc.Arbitrary<string> =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.string({ unit: nastyChar, minLength: 1, maxLength: Math.min(max, 30) }),
    },
    { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_STRINGS.filter((x) => x.length > 0)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom("a", "é", "\u0000", " ", "\u001f"), fc.integer({ min: 1, max }))
        .map(([c, n]) => c.repeat(n)),
    },
  );

export const nastyNumber: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    0.5,
    1.5,
    2,
    10,
    11,
    1e308,
    -1e308,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    -(2 ** 63),
    5e-324,
    604_800,
    604_801,
  ),
  fc.integer(),
  fc.double(),
  fc
    .constantFrom(
      "1e999",
      "-1e999",
      "-0",
      "1E400",
      "18446744073709551616",
      "9007199254740993",
      "1.0",
      "1e0",
      "2e-400",
      "-0.0",
    )
    .map((text) => new RawJson(text)),
);

const PROTO_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "__defineGetter__",
  "toString",
  "valueOf",
  "hasOwnProperty",
];
export const nastyKey = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) },
  { weight: 2, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

const scalarJunk: fc.Arbitrary<Json> = fc.oneof(
  nastyNumber,
  nastyString,
  fc.boolean(),
  fc.constant(null),
);

/** Any JSON value, with nasty strings, numbers and keys all the way down. */
export const { junk } = fc.letrec<{ junk: Json; list: Json[]; obj: Members }>((tie) => ({
  junk: fc.oneof({ depthSize: "small" }, scalarJunk, tie("list"), tie("obj")),
  list: fc.array(tie("junk"), { maxLength: 4 }),
  obj: fc.array(fc.tuple(nastyKey, tie("junk")), { maxLength: 4 }).map((m) => new Members(m)),
}));

/** Nesting from shallow to far past anything a parser or serializer recurses through safely. */
export const deepJson: fc.Arbitrary<RawJson> = fc
  .tuple(
    fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 100, max: 25_000 })),
    fc.constantFrom("array", "object", "mixed"),
  )
  .map(([depth, kind]) => {
    const open = kind === "array" ? "[" : kind === "object" ? '{"a":' : '[{"a":';
    const close = kind === "array" ? "]" : kind === "object" ? "}" : "}]";
    return new RawJson(`${open.repeat(depth)}1${close.repeat(depth)}`);
  });

export const validMetadata: fc.Arbitrary<Json> = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 20 }),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
  { maxKeys: 5 },
);

/**
 * Maps the contract accepts (string keys of 1–64 characters, any JSON values, at most 50
 * keys), with the nastiest keys and values: control characters, NUL, lone surrogates,
 * prototype keys, deep nesting. Built as members so that `__proto__` reaches the wire.
 */
export const nastyMetadata: fc.Arbitrary<Json> = fc
  .array(
    fc.tuple(
      fc.oneof(nastyText(64), fc.constantFrom(...PROTO_KEYS)),
      fc.oneof(
        fc.jsonValue({ maxDepth: 3, stringUnit: nastyChar }) as fc.Arbitrary<Json>,
        nastyString,
        nastyNumber,
        deepJson,
      ),
    ),
    { maxLength: 6 },
  )
  .map((m) => new Members(m));

/** Metadata: valid maps, maps with nasty keys and values, too many keys, and non-objects. */
export const metadata: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: validMetadata },
  {
    weight: 2,
    arbitrary: fc.dictionary(
      fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
      fc.jsonValue({ maxDepth: 3, stringUnit: "binary" }) as fc.Arbitrary<Json>,
      { maxKeys: 5 },
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.oneof(nastyKey, fc.constantFrom("", "k".repeat(64), "k".repeat(65))),
          fc.oneof(junk, deepJson, nastyString),
        ),
        { maxLength: 6 },
      )
      .map((m) => new Members(m)),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 48, max: 52 })
      .map((n) => new Members(Array.from({ length: n }, (_, i): [string, Json] => [`k${i}`, i]))),
  },
  { weight: 1, arbitrary: junk },
);

// ---- timestamps ----------------------------------------------------------------------------

const near = (lo: number, hi: number, outside: number[]) =>
  fc.oneof({ weight: 5, arbitrary: fc.integer({ min: lo, max: hi }) }, fc.constantFrom(...outside));
const two = (n: number) => String(n).padStart(2, "0");

/** ISO 8601 strings from the first year to the last, with offsets, and a few near misses. */
export const instant: fc.Arbitrary<Json> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({
        year: fc.oneof(
          fc.constantFrom(0, 1, 1969, 1970, 2000, 2026, 2038, 9998, 9999),
          fc.integer({ min: 0, max: 9999 }),
        ),
        month: near(1, 12, [0, 13]),
        day: near(1, 28, [0, 29, 30, 31, 32]),
        hour: near(0, 23, [24]),
        minute: near(0, 59, [60]),
        second: near(0, 59, [60]),
        fraction: fc.option(fc.stringMatching(/^\.[0-9]{1,12}$/), { nil: "" }),
        offset: fc.oneof(
          fc.constantFrom("Z", "z", "", "+00:00", "-00:00", "+14:00", "-12:00"),
          fc
            .tuple(fc.constantFrom("+", "-"), near(0, 23, [24, 99]), near(0, 59, [60]))
            .map(([s, h, m]) => `${s}${two(h)}:${two(m)}`),
        ),
      })
      .map(
        (d) =>
          `${String(d.year).padStart(4, "0")}-${two(d.month)}-${two(d.day)}T${two(d.hour)}:${two(
            d.minute,
          )}:${two(d.second)}${d.fraction}${d.offset}`,
      ),
  },
  fc.constantFrom(
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-01-01 00:00:00Z",
    "now",
    "infinity",
    "-infinity",
    "epoch",
    "+010000-01-01T00:00:00Z",
    "-000001-01-01T00:00:00Z",
    "2026-W01",
  ),
  fc.constant(null),
  { weight: 2, arbitrary: junk },
);
