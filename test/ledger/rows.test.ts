import { describe, expect, it } from "vitest";
import { toIso } from "../../src/ledger/rows.ts";

describe("toIso", () => {
  it("reads Postgres timestamps in UTC as ISO 8601 with milliseconds", () => {
    expect(toIso("2026-11-23 18:20:00.123+00")).toBe("2026-11-23T18:20:00.123Z");
    expect(toIso("2026-11-23 18:20:00.12+00")).toBe("2026-11-23T18:20:00.120Z");
    expect(toIso("2026-11-23 18:20:00.1+00")).toBe("2026-11-23T18:20:00.100Z");
    expect(toIso("2026-11-23 18:20:00+00")).toBe("2026-11-23T18:20:00.000Z");
  });

  it("reads the other shapes through Date: jsonb's, an offset, more digits", () => {
    expect(toIso("2026-11-23T18:20:00.5+00:00")).toBe("2026-11-23T18:20:00.500Z");
    expect(toIso("2026-11-23 19:20:00.123+01:00")).toBe("2026-11-23T18:20:00.123Z");
    expect(toIso("2026-11-23 18:20:00.123456+00")).toBe("2026-11-23T18:20:00.123Z");
    expect(toIso(new Date(Date.UTC(2026, 10, 23, 18, 20)))).toBe("2026-11-23T18:20:00.000Z");
  });
});
