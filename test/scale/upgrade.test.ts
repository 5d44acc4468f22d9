import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "../../src/db/migrate.ts";
import { shardsOf } from "../../src/db/shards.ts";
import { getPromotion } from "../../src/ledger/get-promotion.ts";
import { bucketOf } from "../../src/ledger/ids.ts";
import { redeemPromotion } from "../../src/ledger/redeem-promotion.ts";
import { createCitusTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

// `holdfast migrate` on a Citus database that an older holdfast migrated and distributed: the
// migrations up to 0008 (before promotion_allotments), data, then the current ones.
const DRIZZLE = fileURLToPath(new URL("../../drizzle", import.meta.url));
const OLDER = "0008_webhooks";

let older: string;
let db: TestDatabase;

beforeAll(async () => {
  older = await mkdtemp(join(tmpdir(), "holdfast-drizzle-"));
  await cp(DRIZZLE, older, { recursive: true });
  const journal = JSON.parse(await readFile(join(older, "meta/_journal.json"), "utf8"));
  const last = journal.entries.findIndex((e: { tag: string }) => e.tag === OLDER);
  expect(last).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, last + 1);
  await writeFile(join(older, "meta/_journal.json"), JSON.stringify(journal));
  db = await createCitusTestDatabase({ migrationsFolder: older });
});

afterAll(async () => {
  await db?.drop();
  if (older) await rm(older, { recursive: true, force: true });
});

describe("holdfast migrate on a Citus database distributed by an older holdfast", () => {
  it("distributes the new table beside the accounts and keeps each promotion's count and cap", async () => {
    await db.sql`
      INSERT INTO promotions (code, multiplier, max_redemptions)
      VALUES ('OLD-CAP', 2, 10), ('OLD-OPEN', 3, NULL)`;
    await runMigrations(db.url);

    const [allotments] = await db.sql<{ method: string; colocated: boolean }[]>`
      SELECT p.partmethod AS method, p.colocationid = a.colocationid AS colocated
        FROM pg_dist_partition p, pg_dist_partition a
       WHERE p.logicalrelid = 'promotion_allotments'::regclass
         AND a.logicalrelid = 'accounts'::regclass`;
    expect(allotments).toEqual({ method: "h", colocated: true });
    const rows = await db.sql`
      SELECT bucket, promotion_code, allotted, redeemed FROM promotion_allotments ORDER BY 2`;
    expect(rows).toEqual([
      { bucket: 0, promotion_code: "OLD-CAP", allotted: 10, redeemed: 0 },
      { bucket: 0, promotion_code: "OLD-OPEN", allotted: null, redeemed: 0 },
    ]);

    // Accounts on other shards than bucket 0's take their share of the cap, or a row to count in.
    const shards = await shardsOf(db.db);
    const ids: string[] = [];
    for (let i = 0; ids.length < 6; i++) {
      const id = `upgraded-${i}`;
      if (shards.home(0) !== shards.home(bucketOf(id))) ids.push(id);
    }
    for (const id of ids) {
      await fundedAccount(db.db, id, 10);
      for (const code of ["OLD-CAP", "OLD-OPEN"]) {
        const { redemption } = await redeemPromotion(db.db, { code, accountId: id }, shards);
        expect(redemption.basis).toBeGreaterThan(0);
      }
    }
    expect((await getPromotion(db.db, "OLD-CAP")).redemptions).toBe(6);
    expect((await getPromotion(db.db, "OLD-OPEN")).redemptions).toBe(6);
    const [capped] = await db.sql<{ allotted: number }[]>`
      SELECT sum(allotted)::int AS allotted FROM promotion_allotments
       WHERE promotion_code = 'OLD-CAP'`;
    expect(capped!.allotted).toBe(10);
    await expectLedgerConsistent(db.db);
  });
});
