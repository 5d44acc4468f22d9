import { describe, expect, it } from "vitest";
import { attemptsUntil, RETRY_BASE_MS, retryDelay } from "../../src/workers/retry-schedule.ts";

/** The definition: add the shortest delays one at a time until they reach the deadline. */
function countedOneByOne(remaining: number, baseMs: number): number {
  let attempts = 1;
  let elapsed = 0;
  while (elapsed < remaining) {
    elapsed += retryDelay(attempts, baseMs) * 0.8;
    attempts++;
  }
  return attempts + 1;
}

describe("attemptsUntil", () => {
  it("gives the count of adding the delays one by one, for deadlines up to a week", () => {
    const remainders = [-5, 0, 1, 799, 800, 801, 10_000, 95_999, 96_000, 300_000, 3_600_000];
    for (let s = 1; s <= 604_800; s = Math.ceil(s * 1.37) + 11) remainders.push(s * 1000);
    remainders.push(604_800_000);
    for (const baseMs of [RETRY_BASE_MS, 50, 5000, 200_000]) {
      for (const remaining of remainders) {
        expect(attemptsUntil(remaining, 0, baseMs), `${remaining} ms, base ${baseMs}`).toBe(
          countedOneByOne(remaining, baseMs),
        );
      }
    }
  });
});
