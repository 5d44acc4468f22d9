import fc from "fast-check";
import { deepJson, type Json, junk, Members, nastyKey, toJson } from "./fuzz-arbitraries.ts";

export interface Field {
  valid: fc.Arbitrary<Json>;
  /** Near misses of the field's contract: wrong type, out of range, too long. */
  invalid: fc.Arbitrary<Json>;
}

type Member = [string, Json];

/**
 * Object bodies for a route, two ways. `valid`: every member follows the contract (optional
 * ones may be absent), with the nastiest values it allows, to test what lies behind
 * validation. `mutated`: each member absent, valid, a near miss or junk, sometimes with extra
 * members (unknown names, prototype keys, a second copy of a field), to test validation.
 */
export function objectBodies(
  fields: Record<string, Field>,
  required: string[],
): { valid: fc.Arbitrary<string>; mutated: fc.Arbitrary<string> } {
  const names = Object.keys(fields);
  const one =
    (name: string) =>
    (v: Json): Member[] => [[name, v]];
  const absent = fc.constant<Member[]>([]);
  const valid = names.map((name) => {
    const v = fields[name]!.valid.map(one(name));
    return required.includes(name)
      ? v
      : fc.oneof({ weight: 1, arbitrary: absent }, { weight: 3, arbitrary: v });
  });
  const mutated = names.map((name) =>
    fc.oneof(
      { weight: 2, arbitrary: absent },
      { weight: 5, arbitrary: fields[name]!.valid.map(one(name)) },
      { weight: 2, arbitrary: fields[name]!.invalid.map(one(name)) },
      { weight: 1, arbitrary: junk.map(one(name)) },
    ),
  );
  const extraName = fc.oneof(
    nastyKey,
    fc.constantFrom(...names, ...names.map((n) => n.toUpperCase()), `${names[0]} `, "id", "amount"),
  );
  const extra = fc.oneof(
    { weight: 4, arbitrary: absent },
    { weight: 1, arbitrary: fc.array(fc.tuple(extraName, junk), { minLength: 1, maxLength: 3 }) },
  );
  return {
    valid: fc.tuple(...valid).map((chosen) => toJson(new Members(chosen.flat()))),
    mutated: fc
      .tuple(fc.tuple(...mutated), extra)
      .map(([chosen, extras]) => toJson(new Members([...chosen.flat(), ...extras]))),
  };
}

const notJson = (objects: fc.Arbitrary<string>) =>
  fc.oneof(
    fc.constantFrom(
      "",
      " ",
      "{",
      "}",
      '{"amount":',
      "{'id':'x'}",
      "{id:1}",
      "NaN",
      "Infinity",
      "undefined",
      "\ufeff{}",
      "{}garbage",
      "{} {}",
      '{"a":1,}',
      "/* */{}",
      '{"\\u0000":1}',
      '{"a":"\\ud800"}',
      '{"a":"\\u12"}',
    ),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.tuple(objects, fc.nat()).map(([text, n]) => text.slice(0, n % Math.max(text.length, 1))),
  );

export type Body = string | Uint8Array | undefined;

/** Mostly `objects`; sometimes any JSON, deep nesting, broken JSON, raw bytes or no body. */
export function body(objects: fc.Arbitrary<string>): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 12, arbitrary: objects },
    { weight: 1, arbitrary: junk.map(toJson) },
    { weight: 1, arbitrary: deepJson.map(toJson) },
    { weight: 1, arbitrary: notJson(objects) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}
