import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { v7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "../../src/db/migrate.ts";
import { shardsOf } from "../../src/db/shards.ts";
import { decodeFeedCursor } from "../../src/events/feed-cursor.ts";
import { listEvents } from "../../src/events/list-events.ts";
import { encodeCursor } from "../../src/ledger/cursor.ts";
import { getPromotion } from "../../src/ledger/get-promotion.ts";
import { bucketOf } from "../../src/ledger/ids.ts";
import { redeemPromotion } from "../../src/ledger/redeem-promotion.ts";
import { dispatchEvents } from "../../src/webhooks/dispatch.ts";
import { createCitusTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

// `holdfast migrate` on a Citus database that an older holdfast migrated and distributed: the
// migrations up to 0008 (before promotion_allotments), data, then the current ones.
const DRIZZLE = fileURLToPath(new URL("../../drizzle", import.meta.url));
const OLDER = "0008_webhooks";

const OLD_ACCOUNTS = Array.from({ length: 6 }, (_, i) => `before-feeds-${i}`);
const OLD_CURSOR = 3;
const OLD_ENDPOINT = v7();

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
  // Events placed by the one counter of then, an endpoint part-way through them.
  for (const id of OLD_ACCOUNTS) {
    await db.sql`INSERT INTO accounts (bucket, id, kind) VALUES (${bucketOf(id)}, ${id}, 'user')`;
    await db.sql`
      INSERT INTO events (bucket, id, account_id, sequence, type, data)
      VALUES (${bucketOf(id)}, ${v7()}, ${id}, 1, 'account.created', '{}')`;
  }
  await db.sql`SELECT holdfast_position_events(1000)`;
  await db.sql`
    INSERT INTO webhook_endpoints (id, url, secret, cursor)
    VALUES (${OLD_ENDPOINT}, 'http://127.0.0.1:9/old', 'whsec_old', ${OLD_CURSOR})`;
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

describe("the events feed after the upgrade to a feed per shard", () => {
  it("a cursor and an endpoint of the one counter of then go on from where they were", async () => {
    // Every shard's feed gives positions above the old ones: events written since come after.
    await fundedAccount(db.db, "after-feeds", 10);
    const rest = await db.sql<{ id: string }[]>`
      SELECT id FROM events WHERE position IS NULL OR position > ${OLD_CURSOR}`;
    const ids = rest.map((r) => r.id).sort();
    expect(ids.length).toBeGreaterThan(OLD_ACCOUNTS.length - OLD_CURSOR);

    const seen: string[] = [];
    let after = decodeFeedCursor(encodeCursor(OLD_CURSOR))!;
    for (;;) {
      const page = await listEvents(db.db, { after, limit: 7 });
      if (page.data.length === 0) break;
      seen.push(...page.data.map((e) => e.id));
      after = decodeFeedCursor(page.nextCursor)!;
    }
    expect(seen.sort()).toEqual(ids);

    // The first call makes its cursor in each feed at its one position, the next its deliveries.
    await dispatchEvents(db.db);
    await dispatchEvents(db.db);
    const made = await db.sql<{ event_id: string }[]>`
      SELECT event_id FROM webhook_deliveries WHERE endpoint_id = ${OLD_ENDPOINT}`;
    expect(made.map((d) => d.event_id).sort()).toEqual(ids);
    await expectLedgerConsistent(db.db);
  });
});
