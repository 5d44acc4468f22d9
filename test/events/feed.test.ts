import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "../../src/db/client.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { encodeCursor } from "../../src/ledger/cursor.ts";
import { expireOverdueHolds } from "../../src/reservations/release-hold.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { someoneWaitsOnALock } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await expectLedgerConsistent(t.db.db);
  await t.close();
});

type Event = { id: string; type: string; accountId: string; sequence: number; data: unknown };

const call = (method: string, path: string, key?: string, body?: unknown, token = SERVICE) =>
  t.call(method, path, { token, key, body });

/** Follows the feed from `after` until a page comes back empty; the events and the cursor. */
async function follow(query: string, after?: string): Promise<{ events: Event[]; cursor: string }> {
  const events: Event[] = [];
  let cursor = after;
  for (;;) {
    const r = await call("GET", `/v1/events?limit=7${query}${cursor ? `&after=${cursor}` : ""}`);
    expect(r.status).toBe(200);
    expect(typeof r.json.nextCursor).toBe("string");
    cursor = r.json.nextCursor;
    if (r.json.data.length === 0) return { events, cursor: cursor! };
    events.push(...r.json.data);
  }
}

describe("events: one per state change, in the change's transaction", () => {
  it("every change of an account writes its event, numbered 1, 2, 3, …, with the response as data", async () => {
    const answers: [string, unknown][] = [];
    const expectOk = (r: { status: number; json: unknown }, type: string) => {
      expect(r.status).toBeLessThan(300);
      answers.push([type, r.json]);
      return r.json as Record<string, { id: string }>;
    };
    expectOk(await call("POST", "/v1/accounts", undefined, { id: "ev-all" }), "account.created");
    expectOk(
      await call("POST", "/v1/accounts/ev-all/credits", "ev-1", { amount: 100 }, ADMIN),
      "account.credited",
    );
    expectOk(
      await call(
        "POST",
        "/v1/accounts/ev-all/adjustments",
        "ev-2",
        { amount: -5, reason: "x" },
        ADMIN,
      ),
      "account.adjusted",
    );
    const bought = expectOk(
      await call("POST", "/v1/purchases", "ev-3", { accountId: "ev-all", amount: 20 }),
      "hold.placed",
    );
    expectOk(await call("POST", `/v1/holds/${bought.hold!.id}/settle`), "hold.settled");
    expectOk(
      await call("POST", `/v1/holds/${bought.hold!.id}/refunds`, "ev-4", { amount: 5 }),
      "hold.refunded",
    );
    const other = expectOk(
      await call("POST", "/v1/purchases", "ev-5", { accountId: "ev-all", amount: 10 }),
      "hold.placed",
    );
    expectOk(await call("POST", `/v1/holds/${other.hold!.id}/release`), "hold.released");
    await call("POST", "/v1/promotions", undefined, { code: "EVDOUBLE" }, ADMIN);
    expectOk(
      await call("POST", "/v1/promotions/EVDOUBLE/redemptions", "ev-6", { accountId: "ev-all" }),
      "promotion.redeemed",
    );
    const late = expectOk(
      await call("POST", "/v1/purchases", "ev-7", { accountId: "ev-all", amount: 1 }),
      "hold.placed",
    );
    await t.db.db.execute(
      sql`UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = ${late.hold!.id}`,
    );
    await expireOverdueHolds(t.db.db, 100);
    const expired = await call("GET", `/v1/holds/${late.hold!.id}`);
    answers.push(["hold.expired", expired.json]);
    // Refusals and replays write no event.
    await call("POST", "/v1/purchases", "ev-3", { accountId: "ev-all", amount: 20 });
    await call("POST", "/v1/purchases", "ev-8", { accountId: "ev-all", amount: 10_000 });
    await call("POST", `/v1/holds/${other.hold!.id}/settle`);

    const { events } = await follow("&accountId=ev-all");
    expect(events.map((e) => [e.sequence, e.type])).toEqual(
      answers.map(([type], i) => [i + 1, type]),
    );
    expect(events.map((e) => e.data)).toEqual(answers.map(([, body]) => body));
    const typed = await follow("&accountId=ev-all&type=hold.placed,hold.expired");
    expect(typed.events.map((e) => e.sequence)).toEqual([4, 7, 10, 11]);
  });

  it("refuses a bad cursor, limit, type or account id with 400", async () => {
    for (const query of [
      "after=abc",
      "after=Yz",
      "limit=0",
      "limit=501",
      "type=hold.exploded",
      "type=",
      "accountId=@revenue",
      "other=1",
    ]) {
      const r = await call("GET", `/v1/events?${query}`);
      expect([query, r.status, r.json.code]).toEqual([query, 400, "invalid_request"]);
    }
  });
});

describe("events through the write path", () => {
  it("a batch of 20 credits on 20 accounts appends its events with one statement, not one each", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `ev-batch-${i}`);
    for (const id of ids) await fundedAccount(t.db.db, id, 0);
    // Count holdfast_append_events calls, on a pool of its own opened after the setting.
    await t.db.sql.unsafe(`ALTER DATABASE "${t.db.name}" SET track_functions = 'pl'`);
    const calls = async () => {
      const [row] = await t.db.sql<{ calls: number }[]>`
        SELECT COALESCE(sum(calls), 0)::int AS calls FROM pg_stat_user_functions
         WHERE funcname = 'holdfast_append_events'`;
      return row!.calls;
    };
    const before = await calls();
    const handle = createDb(t.db.url, { max: 4 });
    const app = await createTestApp({
      db: { ...t.db, db: handle.db, sql: handle.sql },
      env: { HOLDFAST_BATCH_WINDOW_MS: 20 },
    });
    try {
      const credited = await Promise.all(
        ids.map((id) =>
          app.call("POST", `/v1/accounts/${id}/credits`, { key: `b-${id}`, body: { amount: 1 } }),
        ),
      );
      expect(credited.map((r) => r.status)).toEqual(ids.map(() => 201));
    } finally {
      await app.close();
      // A backend reports its function counts when its session ends.
      await handle.close();
    }
    const after = await waitUntilValue(async () => {
      const n = await calls();
      return n > before ? n : undefined;
    });
    // One call per batch: the 20 requests made at most a few batches.
    expect(after - before).toBeGreaterThanOrEqual(1);
    expect(after - before).toBeLessThanOrEqual(3);
    const [events] = await t.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events
       WHERE type = 'account.credited' AND account_id LIKE 'ev-batch-%'`;
    expect(events!.n).toBe(20);
  });
});

describe("the feed never skips", () => {
  it("an event that commits after a later-written one is placed after it: the reader sees both, once", async () => {
    await fundedAccount(t.db.db, "ev-slow", 10);
    await fundedAccount(t.db.db, "ev-fast", 10);
    const start = await follow("");
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The slow transaction writes its event first (a smaller n) and stays open.
    const slow = t.db.db.transaction(async (tx) => {
      await creditAccount(tx, { accountId: "ev-slow", amount: 1 });
      await held;
    });
    await waitUntil(async () => {
      const [row] = await t.db.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle in transaction'`;
      return row!.n > 0;
    });
    await creditAccount(t.db.db, { accountId: "ev-fast", amount: 1 });
    const first = await follow("", start.cursor);
    expect(first.events.map((e) => e.accountId)).toEqual(["ev-fast"]);

    release();
    await slow;
    const second = await follow("", first.cursor);
    expect(second.events.map((e) => e.accountId)).toEqual(["ev-slow"]);
    // Written first, placed second: reading in write order from the first page's last event
    // would have skipped it.
    const [slowRow, fastRow] = await t.db.sql<{ n: number; position: number }[]>`
      SELECT n, position FROM events WHERE account_id IN ('ev-slow', 'ev-fast')
         AND type = 'account.credited' AND data->'account'->>'settled' = '11'
       ORDER BY account_id DESC`;
    expect(slowRow!.n).toBeLessThan(fastRow!.n);
    expect(slowRow!.position).toBeGreaterThan(fastRow!.position);
  });

  it("a follower polling while 8 writers change 4 accounts sees every event exactly once, in sequence per account", async () => {
    const accounts = ["ev-c0", "ev-c1", "ev-c2", "ev-c3"];
    for (const id of accounts) await fundedAccount(t.db.db, id, 1000);
    const start = await follow("");
    const seen: Event[] = [];
    let writing = true;
    const follower = (async () => {
      let cursor = start.cursor;
      while (writing) {
        const page = await follow("", cursor);
        seen.push(...page.events);
        cursor = page.cursor;
      }
      seen.push(...(await follow("", cursor)).events);
    })();
    let n = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 15; i++) {
          const accountId = accounts[(w + i) % accounts.length]!;
          const r = await call("POST", "/v1/purchases", `ev-w${w}-${i}`, { accountId, amount: 1 });
          expect(r.status).toBe(201);
          if (i % 3 === 0) await call("POST", `/v1/holds/${r.json.hold.id}/settle`);
          n++;
        }
      }),
    );
    writing = false;
    await follower;
    expect(n).toBe(120);
    const ids = seen.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const [all] = await t.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events WHERE account_id IN ${t.db.sql(accounts)} AND sequence > 2`;
    expect(seen.filter((e) => accounts.includes(e.accountId))).toHaveLength(all!.n);
    for (const id of accounts) {
      const sequences = seen.filter((e) => e.accountId === id).map((e) => e.sequence);
      expect(sequences).toEqual(sequences.map((_, i) => i + 3));
    }
  });

  it("a writer waiting on an account lock gets the next number after the one holding it", async () => {
    await fundedAccount(t.db.db, "ev-lock", 10);
    let second: Promise<unknown> | undefined;
    await t.db.db.transaction(async (tx) => {
      await creditAccount(tx, { accountId: "ev-lock", amount: 1 });
      second = creditAccount(t.db.db, { accountId: "ev-lock", amount: 2 });
      await someoneWaitsOnALock(t.db.sql);
    });
    await second;
    const { events } = await follow("&accountId=ev-lock");
    const settled = (e: Event) => {
      const data = e.data as { settled?: number; account?: { settled: number } };
      return data.account?.settled ?? data.settled;
    };
    expect(events.map((e) => [e.sequence, settled(e)])).toEqual([
      [1, 0],
      [2, 10],
      [3, 11],
      [4, 13],
    ]);
  });
});

describe("the cursor", () => {
  it("a cursor given before the feeds were per shard still follows on from its position", async () => {
    await fundedAccount(t.db.db, "ev-legacy", 10);
    await follow("");
    const [last] = await t.db.sql<{ position: number }[]>`
      SELECT max(position)::int8 AS position FROM events WHERE account_id = 'ev-legacy'`;
    await creditAccount(t.db.db, { accountId: "ev-legacy", amount: 1 });
    const { events } = await follow("", encodeCursor(Number(last!.position)));
    expect(events.map((e) => [e.accountId, e.type])).toEqual([["ev-legacy", "account.credited"]]);
  });
});

async function waitUntil(check: () => Promise<boolean>) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("timed out");
}

async function waitUntilValue<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("timed out");
}
