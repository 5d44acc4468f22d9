import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUCKETS } from "../../src/db/schema/index.ts";
import { bucketOf, bucketOfId, lockKey, newIdIn } from "../../src/ledger/ids.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

const ids = Array.from({ length: 3000 }, (_, i) => `acct-${i}-${(i * 7919).toString(36)}`);

describe("buckets", () => {
  it("bucketOf agrees with holdfast_bucket, the SQL that the accounts CHECK uses", async () => {
    const rows = await t.sql<{ id: string; bucket: number }[]>`
      SELECT id, holdfast_bucket(id) AS bucket FROM jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) AS id`;
    expect(rows).toHaveLength(ids.length);
    for (const row of rows) expect(row.bucket).toBe(bucketOf(row.id));
  });

  it("spreads account ids over every bucket", () => {
    const used = new Set(ids.map(bucketOf));
    expect(Math.min(...used)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...used)).toBeLessThan(BUCKETS);
    // 3000 ids over 4096 buckets: about 2200 distinct if the hash is uniform.
    expect(used.size).toBeGreaterThan(2000);
  });

  it("ids carry their bucket and still sort by creation", () => {
    const made = Array.from({ length: 2000 }, (_, i) => newIdIn(i % BUCKETS));
    made.forEach((id, i) => {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(bucketOfId(id)).toBe(i % BUCKETS);
    });
    expect([...made].sort()).toEqual(made);
  });

  it("orders locks by bucket, then by id in byte order", () => {
    const keys = ["b", "a", "B", "0", "Z_"].map(lockKey).sort();
    const order = keys.map((k) => k.slice(4));
    const expected = ["b", "a", "B", "0", "Z_"].sort(
      (x, y) => bucketOf(x) - bucketOf(y) || (x < y ? -1 : x > y ? 1 : 0),
    );
    expect(order).toEqual(expected);
  });
});
