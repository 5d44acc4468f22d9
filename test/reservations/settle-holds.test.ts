import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getAccount } from "../../src/ledger/account.ts";
import { DomainError } from "../../src/ledger/errors.ts";
import { getHold, type Hold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { expireOverdueHolds, releaseHold } from "../../src/reservations/release-hold.ts";
import { settleHolds } from "../../src/reservations/settle-hold.ts";
import { createTestDatabase, someoneWaitsOnALock, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase({ max: 40 });
});
afterAll(async () => {
  await expectLedgerConsistent(t.db);
  await t.drop();
});

const outcome = (r: Hold | DomainError) => (r instanceof DomainError ? r.code : r.settledAmount);

async function holdsOf(accountId: string, amounts: number[]): Promise<string[]> {
  const ids: string[] = [];
  for (const amount of amounts) ids.push((await placeHold(t.db, { accountId, amount })).hold.id);
  return ids;
}

describe("settleHolds: many settles in one statement", () => {
  it("gives each settle its own outcome; a refusal writes nothing and fails no batch-mate", async () => {
    const a = await fundedAccount(t.db, "batch-a", 100);
    const b = await fundedAccount(t.db, "batch-b", 100);
    const [h1, h4] = await holdsOf(b, [30, 20]);
    const [h2, h3] = await holdsOf(a, [40, 10]);
    await releaseHold(t.db, { holdId: h3! });
    const ghost = "01234567-89ab-7def-8123-456789abcdef";
    const results = await settleHolds(t.db, [
      { holdId: h1! },
      { holdId: h2!, amount: 25 },
      { holdId: h3! },
      { holdId: h4!, amount: 21 },
      { holdId: ghost },
    ]);
    expect(results.map(outcome)).toEqual([
      30,
      25,
      "hold_not_pending",
      "amount_exceeds_hold",
      "hold_not_found",
    ]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 75, held: 0 });
    expect(await getAccount(t.db, b)).toMatchObject({ settled: 70, held: 20 });
    expect((await getHold(t.db, h4!)).status).toBe("pending");
  });

  it("numbers one account's settles in input order, each entry with the balance after it", async () => {
    const a = await fundedAccount(t.db, "batch-seq", 100);
    const [x, y, z] = await holdsOf(a, [10, 20, 30]);
    const results = await settleHolds(t.db, [
      { holdId: z! },
      { holdId: x!, amount: 5 },
      { holdId: y! },
    ]);
    expect(results.map(outcome)).toEqual([30, 5, 20]);
    for (const r of results) {
      expect(JSON.stringify(r)).toBe(JSON.stringify(await getHold(t.db, (r as Hold).id)));
    }
    const entries = await t.db.execute<{ seq: number; amount: number; settled_after: number }>(
      sql`SELECT seq::int, amount::int, settled_after::int FROM entries
           WHERE account_id = ${a} ORDER BY id`,
    );
    expect(entries.map((e) => [e.seq, e.amount, e.settled_after])).toEqual([
      [1, 100, 100],
      [2, -30, 70],
      [3, -5, 65],
      [4, -20, 45],
    ]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 45, held: 0, available: 45 });
  });

  it("a hold asked twice in one batch is settled once, by its first settle", async () => {
    const a = await fundedAccount(t.db, "batch-twice", 50);
    const [h] = await holdsOf(a, [20]);
    const results = await settleHolds(t.db, [{ holdId: h!, amount: 7 }, { holdId: h! }]);
    expect(results.map(outcome)).toEqual([7, 7]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 43, held: 0 });
  });

  it("a hold asked twice whose first settle is refused is settled by the second", async () => {
    const a = await fundedAccount(t.db, "batch-refused-first", 50);
    const [h] = await holdsOf(a, [5]);
    const results = await settleHolds(t.db, [{ holdId: h!, amount: 9 }, { holdId: h! }]);
    expect(results.map(outcome)).toEqual(["amount_exceeds_hold", 5]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 45, held: 0 });
  });

  it("the sweep and a settle batch over the same accounts wait for each other, never deadlock", async () => {
    // Accounts dl-1 < dl-2 < … < dl-8 in byte order. A transaction holds dl-2; the settle batch
    // (a hold on each account) locks dl-1 and waits for dl-2. The sweep, with overdue holds on
    // every account but dl-2, must wait for dl-1 before it locks any other, or the two deadlock.
    const accounts = await Promise.all(
      Array.from({ length: 8 }, (_, i) => fundedAccount(t.db, `dl-${i + 1}`, 100)),
    );
    const settling = await Promise.all(accounts.map((id) => holdsOf(id, [10])));
    const overdue = (
      await Promise.all(accounts.filter((_, i) => i !== 1).map((id) => holdsOf(id, [20])))
    ).flat();
    await t.db.execute(
      sql`UPDATE holds SET expires_at = now() - interval '1 second'
           WHERE id IN (${sql.join(
             overdue.map((id) => sql`${id}::uuid`),
             sql`, `,
           )})`,
    );
    let outcomes: Promise<[(Hold | DomainError)[], string[]]> | undefined;
    await t.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1 FROM accounts WHERE id = ${accounts[1]!} FOR NO KEY UPDATE`);
      const settle = settleHolds(
        t.db,
        settling.map(([holdId]) => ({ holdId: holdId! })),
      );
      await someoneWaitsOnALock(t.sql);
      outcomes = Promise.all([settle, expireOverdueHolds(t.db, 10)]);
      await someoneWaitsOnALock(t.sql, 2);
    });
    const [settled, expired] = await outcomes!;
    expect(settled.map(outcome)).toEqual(accounts.map(() => 10));
    expect([...expired].sort()).toEqual([...overdue].sort());
    for (const id of accounts) {
      expect(await getAccount(t.db, id)).toMatchObject({ settled: 90, held: 0 });
    }
  });

  it("a settle that waited for a concurrent release finds the hold released", async () => {
    const a = await fundedAccount(t.db, "batch-wait", 100);
    const [released, other] = await holdsOf(a, [60, 30]);
    let settling: Promise<(Hold | DomainError)[]> | undefined;
    await t.db.transaction(async (tx) => {
      await releaseHold(tx, { holdId: released! });
      settling = settleHolds(t.db, [{ holdId: released! }, { holdId: other! }]);
      await someoneWaitsOnALock(t.sql);
    });
    expect((await settling!).map(outcome)).toEqual(["hold_not_pending", 30]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 70, held: 0, available: 70 });
  });

  it("concurrent batches and releases over the same accounts: every hold ends once, no deadlock", async () => {
    const accounts = await Promise.all(
      Array.from({ length: 6 }, (_, i) => fundedAccount(t.db, `batch-race-${i}`, 1_000)),
    );
    const holds = (
      await Promise.all(
        accounts.map((accountId) =>
          Promise.all(Array.from({ length: 20 }, () => placeHold(t.db, { accountId, amount: 7 }))),
        ),
      )
    ).flatMap((placed) => placed.map((p) => p.hold.id));
    // Every hold is asked for by two of 24 batches in shuffled orders, and a third are released.
    const shuffled = () => [...holds].sort(() => Math.random() - 0.5);
    const asked = [...shuffled(), ...shuffled()];
    const batches = Array.from({ length: 24 }, (_, b) => asked.filter((_, i) => i % 24 === b));
    const releases = holds.filter((_, i) => i % 3 === 0);
    const [settled, released] = await Promise.all([
      Promise.all(
        batches.map((batch) =>
          settleHolds(
            t.db,
            batch.map((holdId) => ({ holdId })),
          ),
        ),
      ),
      Promise.all(
        releases.map((holdId) =>
          releaseHold(t.db, { holdId }).catch((error: unknown) => error as DomainError),
        ),
      ),
    ]);
    const statuses = new Map<string, string>();
    for (const id of holds) statuses.set(id, (await getHold(t.db, id)).status);
    for (const result of settled.flat()) {
      if (result instanceof DomainError) expect(result.code).toBe("hold_not_pending");
      else expect(statuses.get(result.id)).toBe("settled");
    }
    for (const [i, result] of released.entries()) {
      const status = statuses.get(releases[i]!);
      if (result instanceof DomainError)
        expect([result.code, status]).toEqual(["hold_not_pending", "settled"]);
      else expect(status).toBe("released");
    }
    expect([...statuses.values()].every((s) => s === "settled" || s === "released")).toBe(true);
    for (const accountId of accounts) {
      const settledHere = holds.filter(
        (id, i) =>
          Math.floor(i / 20) === accounts.indexOf(accountId) && statuses.get(id) === "settled",
      ).length;
      expect(await getAccount(t.db, accountId)).toMatchObject({
        settled: 1_000 - 7 * settledHere,
        held: 0,
      });
    }
  });
});
