import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getAccount } from "../../src/ledger/account.ts";
import { DomainError } from "../../src/ledger/errors.ts";
import { getHold } from "../../src/reservations/hold.ts";
import { placeHold, placeHolds } from "../../src/reservations/place-hold.ts";
import { releaseHold } from "../../src/reservations/release-hold.ts";
import { createTestDatabase, someoneWaitsOnALock, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase({ max: 10 });
});
afterAll(async () => {
  await expectLedgerConsistent(t.db);
  await t.drop();
});

const outcome = (r: unknown) =>
  r instanceof DomainError ? r.code : (r as { account: { held: number } }).account.held;

describe("placeHolds: many purchases in one statement", () => {
  it("decides each account's purchases in input order, as if one after the other", async () => {
    const a = await fundedAccount(t.db, "batch-a", 100);
    const b = await fundedAccount(t.db, "batch-b", 10);
    const results = await placeHolds(t.db, [
      { accountId: a, amount: 60 },
      { accountId: b, amount: 11 },
      { accountId: a, amount: 50 },
      { accountId: "batch-nobody", amount: 1 },
      { accountId: a, amount: 40 },
      { accountId: b, amount: 10 },
    ]);
    // 60 fits (held 60); 50 does not (40 left); 40 does (held 100). Each answer shows the
    // account as its own purchase left it.
    expect(results.map(outcome)).toEqual([
      60,
      "insufficient_funds",
      "insufficient_funds",
      "account_not_found",
      100,
      10,
    ]);
    expect((results[2] as DomainError).message).toBe(
      "account batch-a has 40 coins available, 50 needed",
    );
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 100, held: 100, available: 0 });
    expect(await getAccount(t.db, b)).toMatchObject({ settled: 10, held: 10, available: 0 });
  });

  it("answers each hold exactly as a later read of it shows it", async () => {
    const a = await fundedAccount(t.db, "batch-read", 100);
    const results = await placeHolds(t.db, [
      { accountId: a, amount: 5, orderId: "o-1", metadata: { zeta: 1, a: [1, { b: "c" }] } },
      { accountId: a, amount: 6, description: "two", expiresInSeconds: 60 },
    ]);
    for (const r of results) {
      if (r instanceof DomainError) throw r;
      expect(JSON.stringify(r.hold)).toBe(JSON.stringify(await getHold(t.db, r.hold.id)));
    }
  });

  it("a purchase that waited for a concurrent release is decided on what the release left", async () => {
    // Found by the concurrent property test: a single statement whose UPDATE followed a
    // SELECT … FOR UPDATE computed the new `held` from its snapshot, taken before the release
    // committed, while its decision used the locked row: the account went over its balance.
    const a = await fundedAccount(t.db, "batch-wait", 10);
    const { hold } = await placeHold(t.db, { accountId: a, amount: 6 });
    let placing: Promise<unknown[]> | undefined;
    await t.db.transaction(async (tx) => {
      await releaseHold(tx, { holdId: hold.id });
      placing = placeHolds(t.db, [
        { accountId: a, amount: 6 },
        { accountId: a, amount: 6 },
      ]);
      await someoneWaitsOnALock(t.sql);
    });
    expect((await placing!).map(outcome)).toEqual([6, "insufficient_funds"]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 10, held: 6, available: 4 });
  });

  it("a batch over several accounts, one waiting for a concurrent release: each held is exact", async () => {
    // On plain Postgres a batch of several accounts raises their `held` with one UPDATE, after
    // every account is decided: it must add to the row as the release left it.
    const a = await fundedAccount(t.db, "batch-wait-a", 10);
    const b = await fundedAccount(t.db, "batch-wait-b", 10);
    const { hold } = await placeHold(t.db, { accountId: a, amount: 6 });
    let placing: Promise<unknown[]> | undefined;
    await t.db.transaction(async (tx) => {
      await releaseHold(tx, { holdId: hold.id });
      placing = placeHolds(t.db, [
        { accountId: b, amount: 3 },
        { accountId: a, amount: 6 },
        { accountId: b, amount: 8 },
        { accountId: a, amount: 4 },
        { accountId: b, amount: 7 },
      ]);
      await someoneWaitsOnALock(t.sql);
    });
    expect((await placing!).map(outcome)).toEqual([3, 6, "insufficient_funds", 10, 10]);
    expect(await getAccount(t.db, a)).toMatchObject({ settled: 10, held: 10, available: 0 });
    expect(await getAccount(t.db, b)).toMatchObject({ settled: 10, held: 10, available: 0 });
    const [held] = await t.db.execute<{ a: number; b: number }>(sql`
      SELECT (SELECT sum(amount)::int FROM holds WHERE account_id = ${a} AND status = 'pending') AS a,
             (SELECT sum(amount)::int FROM holds WHERE account_id = ${b} AND status = 'pending') AS b`);
    expect(held).toEqual({ a: 10, b: 10 });
  });

  it("a batch that names no account it can find writes nothing", async () => {
    const [before] = await t.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM holds`);
    const results = await placeHolds(t.db, [{ accountId: "batch-ghost", amount: 1 }]);
    expect(results.map(outcome)).toEqual(["account_not_found"]);
    const [after] = await t.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM holds`);
    expect(after!.n).toBe(before!.n);
  });
});
