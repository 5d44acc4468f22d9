import { describe, expect, it } from "vitest";
import { stringify } from "../../src/http/json.ts";

describe("stringify", () => {
  it("writes what JSON.stringify writes when there is no bigint", () => {
    const value = { hold: { id: "a", amount: 5, metadata: { k: [1, "x", null] } }, n: null };
    expect(stringify(value)).toBe(JSON.stringify(value));
  });

  it("writes a bigint as a JSON integer, wherever it is", () => {
    const total = 2n ** 63n - 1n;
    expect(stringify({ account: { settled: total, held: 0 }, list: [-total] })).toBe(
      `{"account":{"settled":${total},"held":0},"list":[${-total}]}`,
    );
  });
});
