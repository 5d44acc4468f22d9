import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgErrorCode } from "../../src/db/errors.ts";
import { MAX_AMOUNT } from "../../src/db/schema/index.ts";
import { ONE_SHARD } from "../../src/db/shards.ts";
import { getAccount } from "../../src/ledger/account.ts";
import { createPromotion, splitCap } from "../../src/ledger/create-promotion.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { isDomainError } from "../../src/ledger/errors.ts";
import { getPromotion } from "../../src/ledger/get-promotion.ts";
import { bucketOf } from "../../src/ledger/ids.ts";
import { redeemPromotion } from "../../src/ledger/redeem-promotion.ts";
import { seedDemo } from "../../src/ledger/seed.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { releaseHold } from "../../src/reservations/release-hold.ts";
import { settleHold } from "../../src/reservations/settle-hold.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import {
  dbNow,
  entriesInOrder,
  jitter,
  replaySerially,
  storyOutcome,
} from "../helpers/promotions.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await createPromotion(t.db, { code: "DOUBLE" }, ONE_SHARD);
});
afterAll(async () => {
  await expectLedgerConsistent(t.db);
  await t.drop();
});

/** "ok", or the domain error's code; anything else (a deadlock, a crash) is the error itself. */
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => {
      if (isDomainError(e)) return e.code;
      throw e;
    },
  );

const redeem = (accountId: string, code = "DOUBLE") =>
  redeemPromotion(t.db, { code, accountId }, ONE_SHARD);

async function redemptionRows(code: string) {
  return t.db.execute<{ account_id: string; basis: number; credited: number }>(
    sql`SELECT account_id, basis, credited FROM redemptions WHERE promotion_code = ${code}`,
  );
}

async function promotionsSettled(): Promise<number> {
  const [row] = await t.db.execute<{ settled: number }>(
    sql`SELECT sum(settled)::int8 AS settled FROM accounts WHERE id = '@promotions'`,
  );
  return row!.settled;
}

describe("creating and reading promotions", () => {
  it("defaults to ×2, unlimited, always active; reads back what was stored", async () => {
    const created = await createPromotion(t.db, { code: "PLAIN-1" }, ONE_SHARD);
    expect(created).toMatchObject({
      code: "PLAIN-1",
      multiplier: 2,
      maxRedemptions: null,
      redemptions: 0,
      startsAt: null,
      endsAt: null,
    });
    expect(await getPromotion(t.db, "PLAIN-1")).toEqual(created);
  });

  it("stores multiplier, cap and window at millisecond precision", async () => {
    const created = await createPromotion(
      t.db,
      {
        code: "TRIPLE_WINTER",
        multiplier: 3,
        maxRedemptions: 100,
        startsAt: "2030-01-01T00:00:00.000+01:00",
        endsAt: new Date("2030-02-01T00:00:00.1239Z"),
      },
      ONE_SHARD,
    );
    expect(created).toMatchObject({
      multiplier: 3,
      maxRedemptions: 100,
      startsAt: "2029-12-31T23:00:00.000Z",
      endsAt: "2030-02-01T00:00:00.123Z",
    });
  });

  it("a taken code: promotion_exists, the first promotion unchanged", async () => {
    await createPromotion(t.db, { code: "TAKEN", multiplier: 5 }, ONE_SHARD);
    const error = await codeOf(createPromotion(t.db, { code: "TAKEN", multiplier: 2 }, ONE_SHARD));
    expect(error).toBe("promotion_exists");
    expect((await getPromotion(t.db, "TAKEN")).multiplier).toBe(5);
  });

  it("refuses bad inputs before touching the database", async () => {
    const bad = [
      { code: "ab" },
      { code: "lower" },
      { code: "X".repeat(33) },
      { code: "BAD1", multiplier: 1 },
      { code: "BAD2", multiplier: 11 },
      { code: "BAD3", multiplier: 2.5 },
      { code: "BAD4", maxRedemptions: 0 },
      { code: "BAD5", startsAt: "2030-01-02T00:00:00Z", endsAt: "2030-01-01T00:00:00Z" },
      { code: "BAD6", startsAt: "2030-01-01T00:00:00Z", endsAt: "2030-01-01T00:00:00Z" },
      { code: "BAD7", startsAt: "not a date" },
    ];
    for (const input of bad)
      await expect(createPromotion(t.db, input, ONE_SHARD)).rejects.toThrow(TypeError);
    const [row] = await t.db.execute<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM promotions WHERE code LIKE 'BAD%'`,
    );
    expect(row!.n).toBe(0);
  });

  it("an unknown code: promotion_not_found", async () => {
    expect(await codeOf(getPromotion(t.db, "NOPE"))).toBe("promotion_not_found");
  });
});

describe("the founding story (DESIGN.md section 1)", () => {
  it("50 settled, hold 20, redeem DOUBLE, purchase fails: 100", async () => {
    const id = await fundedAccount(t.db, "story-fails", 50);
    const { hold, account } = await placeHold(t.db, { accountId: id, amount: 20 });
    expect(account).toMatchObject({ settled: 50, held: 20, available: 30 });
    const redeemed = await redeem(id);
    expect(redeemed.redemption).toMatchObject({
      code: "DOUBLE",
      accountId: id,
      basis: 50,
      credited: 50,
    });
    expect(redeemed.account).toMatchObject({ settled: 100, held: 20, available: 80 });
    expect((await getPromotion(t.db, "DOUBLE")).redemptions).toBeGreaterThanOrEqual(1);
    await releaseHold(t.db, { holdId: hold.id, reason: "out of stock" });
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 100, held: 0, available: 100 });
    expect(replaySerially(await entriesInOrder(t.db, id), 2).kinds).toEqual([
      "credit",
      "promotion",
    ]);
  });

  it("50 settled, hold 20, redeem DOUBLE, purchase succeeds: 80", async () => {
    const id = await fundedAccount(t.db, "story-succeeds", 50);
    const { hold } = await placeHold(t.db, { accountId: id, amount: 20 });
    const redeemed = await redeem(id);
    expect(redeemed.account).toMatchObject({ settled: 100, held: 20, available: 80 });
    await settleHold(t.db, { holdId: hold.id });
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 80, held: 0, available: 80 });
    const { settled, kinds } = replaySerially(await entriesInOrder(t.db, id), 2);
    expect(kinds).toEqual(["credit", "promotion", "purchase"]);
    expect(settled).toBe(80);
  });

  it("the purchase settled before the redemption: the basis is 30, the outcome 60", async () => {
    const id = await fundedAccount(t.db, "story-settled-first", 50);
    const { hold } = await placeHold(t.db, { accountId: id, amount: 20 });
    await settleHold(t.db, { holdId: hold.id });
    const redeemed = await redeem(id);
    expect(redeemed.redemption).toMatchObject({ basis: 30, credited: 30 });
    expect(redeemed.account).toMatchObject({ settled: 60, held: 0 });
    expect(replaySerially(await entriesInOrder(t.db, id), 2).kinds).toEqual([
      "credit",
      "purchase",
      "promotion",
    ]);
  });

  it("purchase and redemption at the same instant on 30 accounts, then half released, half settled: every balance is a serial order's", async () => {
    const ids = await Promise.all(
      Array.from({ length: 30 }, (_, i) => fundedAccount(t.db, `same-instant-${i}`, 50)),
    );
    const placed = await Promise.all(
      ids.map(async (id) => {
        const [purchase, redemption] = await Promise.all([
          placeHold(t.db, { accountId: id, amount: 20 }),
          redeem(id),
        ]);
        // A hold never reduces settled, so the basis is 50 whichever came first.
        expect(redemption.redemption.basis).toBe(50);
        return purchase.hold;
      }),
    );
    await Promise.all(
      placed.map((hold, i) =>
        i % 2 === 0
          ? releaseHold(t.db, { holdId: hold.id })
          : settleHold(t.db, { holdId: hold.id }),
      ),
    );
    for (const [i, id] of ids.entries()) {
      const { settled, kinds } = replaySerially(await entriesInOrder(t.db, id), 2);
      const account = await getAccount(t.db, id);
      expect(account).toMatchObject({ settled, held: 0 });
      expect(settled).toBe(storyOutcome(kinds));
      expect(settled).toBe(i % 2 === 0 ? 100 : 80);
    }
  });

  it("settle or release racing the redemption on 30 accounts: each outcome is the serial outcome of the account's entry order", async () => {
    const ids = await Promise.all(
      Array.from({ length: 30 }, (_, i) => fundedAccount(t.db, `racing-settle-${i}`, 50)),
    );
    const holds = await Promise.all(
      ids.map((id) => placeHold(t.db, { accountId: id, amount: 20 })),
    );
    const redemptions = await Promise.all(
      ids.map(async (id, i) => {
        const holdId = holds[i]!.hold.id;
        const [, redeemed] = await Promise.all([
          jitter(4).then(() =>
            i % 2 === 0 ? releaseHold(t.db, { holdId }) : settleHold(t.db, { holdId }),
          ),
          jitter(4).then(() => redeem(id)),
        ]);
        return redeemed.redemption;
      }),
    );
    for (const [i, id] of ids.entries()) {
      const { settled, kinds } = replaySerially(await entriesInOrder(t.db, id), 2);
      expect(await getAccount(t.db, id)).toMatchObject({ settled, held: 0 });
      expect(settled).toBe(storyOutcome(kinds));
      // Promotion then purchase: 80; purchase settled first: 30 × 2 = 60; released: 100.
      expect(i % 2 === 0 ? [100] : [80, 60]).toContain(settled);
      expect(kinds).toEqual(
        i % 2 === 0
          ? ["credit", "promotion"]
          : expect.arrayContaining(["credit", "promotion", "purchase"]),
      );
      // The redemption's basis is the settled balance just before it in that same order.
      expect(redemptions[i]!.basis).toBe(kinds.indexOf("purchase") === 1 ? 30 : 50);
    }
  });
});

describe("redemption rules", () => {
  it("10 redemptions by one account at once: exactly one, credited once", async () => {
    const id = await fundedAccount(t.db, "tenfold", 40);
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => codeOf(redeem(id))));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "promotion_already_redeemed")).toHaveLength(9);
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 80 });
    expect((await redemptionRows("DOUBLE")).filter((r) => r.account_id === id)).toHaveLength(1);
  });

  it("a promotion capped at 1, redeemed by 20 accounts at once: exactly one", async () => {
    await createPromotion(t.db, { code: "ONLY-ONE", maxRedemptions: 1 }, ONE_SHARD);
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fundedAccount(t.db, `cap1-${i}`, 10)),
    );
    const before = await promotionsSettled();
    const outcomes = await Promise.all(ids.map((id) => codeOf(redeem(id, "ONLY-ONE"))));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "promotion_inactive")).toHaveLength(19);
    expect((await getPromotion(t.db, "ONLY-ONE")).redemptions).toBe(1);
    expect(await redemptionRows("ONLY-ONE")).toHaveLength(1);
    expect(await promotionsSettled()).toBe(before - 10);
  });

  it("a promotion capped at 5, redeemed by 20 accounts at once: exactly five", async () => {
    await createPromotion(t.db, { code: "FIVE", multiplier: 3, maxRedemptions: 5 }, ONE_SHARD);
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fundedAccount(t.db, `cap5-${i}`, 10)),
    );
    const outcomes = await Promise.all(ids.map((id) => codeOf(redeem(id, "FIVE"))));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(5);
    expect((await getPromotion(t.db, "FIVE")).redemptions).toBe(5);
    const winners = ids.filter((_, i) => outcomes[i] === "ok");
    for (const id of winners) expect((await getAccount(t.db, id)).settled).toBe(30);
  });

  it("the window, by the database clock: active from startsAt, inactive from endsAt", async () => {
    const id = await fundedAccount(t.db, "windows", 10);
    const now = await dbNow(t.db);
    const at = (ms: number) => new Date(now.getTime() + ms);
    await createPromotion(t.db, { code: "LATER", startsAt: at(3_600_000) }, ONE_SHARD);
    await createPromotion(t.db, { code: "OVER", endsAt: at(-1000) }, ONE_SHARD);
    await createPromotion(
      t.db,
      { code: "OPEN", startsAt: at(-60_000), endsAt: at(3_600_000) },
      ONE_SHARD,
    );
    expect(await codeOf(redeem(id, "LATER"))).toBe("promotion_inactive");
    expect(await codeOf(redeem(id, "OVER"))).toBe("promotion_inactive");
    expect((await getPromotion(t.db, "LATER")).redemptions).toBe(0);
    expect((await redeem(id, "OPEN")).account.settled).toBe(20);
  });

  it("the exact boundaries: redeemable at startsAt, not at endsAt", async () => {
    const id = await fundedAccount(t.db, "boundaries", 10);
    // now() is fixed for a transaction, so the promotions can start or end at exactly it.
    await t.db.transaction(async (tx) => {
      const now = await dbNow(tx);
      const ms = (d: number) => new Date(now.getTime() + d);
      await createPromotion(tx, { code: "ENDS-NOW", endsAt: now }, ONE_SHARD);
      await createPromotion(tx, { code: "STARTS-NOW", startsAt: now }, ONE_SHARD);
      await createPromotion(tx, { code: "STARTS-NEXT-MS", startsAt: ms(1) }, ONE_SHARD);
      await createPromotion(
        tx,
        { code: "ENDS-NEXT-MS", startsAt: ms(-1), endsAt: ms(1) },
        ONE_SHARD,
      );
      expect(
        await codeOf(redeemPromotion(tx, { code: "ENDS-NOW", accountId: id }, ONE_SHARD)),
      ).toBe("promotion_inactive");
      expect(
        await codeOf(redeemPromotion(tx, { code: "STARTS-NEXT-MS", accountId: id }, ONE_SHARD)),
      ).toBe("promotion_inactive");
      expect(
        await codeOf(redeemPromotion(tx, { code: "STARTS-NOW", accountId: id }, ONE_SHARD)),
      ).toBe("ok");
      expect(
        await codeOf(redeemPromotion(tx, { code: "ENDS-NEXT-MS", accountId: id }, ONE_SHARD)),
      ).toBe("ok");
    });
    expect((await getAccount(t.db, id)).settled).toBe(40);
  });

  it("a credit past 2^53 − 1: balance_limit_exceeded and nothing written", async () => {
    const id = await fundedAccount(t.db, "huge", 2 ** 52 + 1);
    await createPromotion(t.db, { code: "HUGE" }, ONE_SHARD);
    const before = await promotionsSettled();
    expect(await codeOf(redeem(id, "HUGE"))).toBe("balance_limit_exceeded");
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 2 ** 52 + 1, held: 0 });
    expect(await getPromotion(t.db, "HUGE")).toMatchObject({ redemptions: 0 });
    expect(await redemptionRows("HUGE")).toHaveLength(0);
    expect(await promotionsSettled()).toBe(before);
    expect(await entriesInOrder(t.db, id)).toHaveLength(1);

    // The largest balance that can be doubled, floor((2^53 − 1) / 2), is credited in full.
    const edge = await fundedAccount(t.db, "huge-edge", Math.floor(MAX_AMOUNT / 2));
    const { account } = await redeem(edge, "HUGE");
    expect(account.settled).toBe(MAX_AMOUNT - 1);
  });

  it("an account with nothing settled: a zero-credit redemption, recorded and counted, with no transaction", async () => {
    await createPromotion(t.db, { code: "ZERO-OK", maxRedemptions: 2 }, ONE_SHARD);
    const id = await fundedAccount(t.db, "empty", 0);
    const { redemption, account } = await redeem(id, "ZERO-OK");
    expect(redemption).toMatchObject({ basis: 0, credited: 0, transactionId: null });
    expect(account).toMatchObject({ id, settled: 0, held: 0, available: 0 });
    expect((await getPromotion(t.db, "ZERO-OK")).redemptions).toBe(1);
    expect(await entriesInOrder(t.db, id)).toHaveLength(0);
    // It used up the account's one redemption: coins that arrive later are not multiplied.
    await creditAccount(t.db, { accountId: id, amount: 10 });
    expect(await codeOf(redeem(id, "ZERO-OK"))).toBe("promotion_already_redeemed");
    expect((await getAccount(t.db, id)).settled).toBe(10);
  });

  it("coins all reserved by a hold are still settled, and are multiplied", async () => {
    const id = await fundedAccount(t.db, "all-held", 20);
    await placeHold(t.db, { accountId: id, amount: 20 });
    const { redemption, account } = await redeem(id);
    expect(redemption).toMatchObject({ basis: 20, credited: 20 });
    expect(account).toMatchObject({ settled: 40, held: 20, available: 20 });
  });

  it("unknown promotion or account: not found; a system account cannot redeem", async () => {
    const id = await fundedAccount(t.db, "finder", 5);
    expect(await codeOf(redeem(id, "MISSING"))).toBe("promotion_not_found");
    expect(await codeOf(redeem("nobody-here"))).toBe("account_not_found");
    expect(await codeOf(redeem("@issuance"))).toBe("account_not_found");
  });

  it("a refusal inside a caller's transaction leaves that transaction usable", async () => {
    const id = await fundedAccount(t.db, "composed", 10);
    await redeem(id);
    await t.db.transaction(async (tx) => {
      expect(await codeOf(redeemPromotion(tx, { code: "DOUBLE", accountId: id }, ONE_SHARD))).toBe(
        "promotion_already_redeemed",
      );
      await creditAccount(tx, { accountId: id, amount: 1 });
    });
    expect((await getAccount(t.db, id)).settled).toBe(21);
  });

  it("the database backs the rules: a second row for an account, or a count past the cap, is refused", async () => {
    await createPromotion(t.db, { code: "GUARDED", maxRedemptions: 1 }, ONE_SHARD);
    const id = await fundedAccount(t.db, "guarded", 0);
    await redeem(id, "GUARDED");
    const insert = t.db.execute(
      sql`INSERT INTO redemptions (bucket, promotion_code, account_id, basis, credited)
          VALUES (${bucketOf(id)}, 'GUARDED', ${id}, 0, 0)`,
    );
    expect(await insert.then(() => "ok", pgErrorCode)).toBe("23505");
    const bump = t.db.execute(
      sql`UPDATE promotion_allotments SET redeemed = redeemed + 1 WHERE promotion_code = 'GUARDED'`,
    );
    expect(await bump.then(() => "ok", pgErrorCode)).toBe("23514");
  });

  it("redemptions, purchases, settles and credits racing on the same accounts: no deadlock, every account a serial order", async () => {
    const codes = ["MIX-A", "MIX-B", "MIX-C"];
    for (const code of codes) await createPromotion(t.db, { code, maxRedemptions: 10 }, ONE_SHARD);
    const ids = await Promise.all(
      Array.from({ length: 8 }, (_, i) => fundedAccount(t.db, `mix-${i}`, 100)),
    );
    const work: Promise<string>[] = [];
    for (const id of ids) {
      for (const code of codes) work.push(codeOf(redeem(id, code)));
      for (let k = 0; k < 3; k++) {
        work.push(
          codeOf(
            placeHold(t.db, { accountId: id, amount: 10 }).then(({ hold }) =>
              k === 0
                ? releaseHold(t.db, { holdId: hold.id })
                : settleHold(t.db, { holdId: hold.id }),
            ),
          ),
        );
      }
      work.push(codeOf(creditAccount(t.db, { accountId: id, amount: 7 })));
    }
    // codeOf rethrows anything that is not a domain error: a deadlock would fail here.
    const outcomes = await Promise.all(work);
    expect(outcomes.every((o) => o === "ok" || o === "promotion_inactive")).toBe(true);
    let redeemed = 0;
    for (const code of codes) redeemed += (await getPromotion(t.db, code)).redemptions;
    expect(redeemed).toBe(outcomes.filter((o, i) => o === "ok" && i % 7 < 3).length);
    for (const id of ids) {
      const { settled } = replaySerially(await entriesInOrder(t.db, id), 2);
      expect((await getAccount(t.db, id)).settled).toBe(settled);
    }
  });
});

describe("seed", () => {
  it("creates DOUBLE once; running it again changes nothing", async () => {
    const fresh = await createTestDatabase({ max: 4 });
    try {
      expect(await seedDemo(fresh.db)).toEqual(["alice", "bob", "DOUBLE"]);
      const first = await getPromotion(fresh.db, "DOUBLE");
      expect(first).toMatchObject({ multiplier: 2, maxRedemptions: null, redemptions: 0 });
      const again = await Promise.all([seedDemo(fresh.db), seedDemo(fresh.db)]);
      expect(again).toEqual([[], []]);
      expect(await getPromotion(fresh.db, "DOUBLE")).toEqual(first);
      await expectLedgerConsistent(fresh.db);
    } finally {
      await fresh.drop();
    }
  });
});

/**
 * The cap split between shards (src/db/sql/allot.sql), with three home buckets standing for
 * three shards: the SQL takes the layout from its caller, so plain Postgres shows the
 * bookkeeping that Citus runs shard by shard (test/scale/single-shard.test.ts runs it there).
 */
describe("a cap split between shards", () => {
  const HOMES = [0, 1366, 2731];
  const THREE = {
    homes: HOMES,
    home: (bucket: number) => HOMES.findLast((h) => h <= bucket)!,
  };
  /** Accounts whose buckets fall in the given shards, funded with 10. */
  async function accountsIn(prefix: string, shards: number[]): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; ids.length < shards.length; i++) {
      const id = `${prefix}-${i}`;
      if (THREE.home(bucketOf(id)) === HOMES[shards[ids.length]!]) ids.push(id);
    }
    return Promise.all(ids.map((id) => fundedAccount(t.db, id, 10)));
  }
  const allotments = (code: string) =>
    t.db.execute<{ bucket: number; allotted: number | null; redeemed: number }>(sql`
      SELECT bucket, allotted, redeemed FROM promotion_allotments
       WHERE promotion_code = ${code} ORDER BY bucket`);
  const redeemIn = (id: string, code: string) =>
    codeOf(redeemPromotion(t.db, { code, accountId: id }, THREE));

  it("splitCap gives the first shards the remainder; uncapped, every shard a row to count in", () => {
    expect(splitCap(10, HOMES)).toEqual([4, 3, 3]);
    expect(splitCap(2, HOMES)).toEqual([1, 1, 0]);
    expect(splitCap(null, HOMES)).toEqual([null, null, null]);
  });

  it("each redemption counts on its account's shard while the shard has allotment", async () => {
    await createPromotion(t.db, { code: "SPLIT-10", maxRedemptions: 10 }, THREE);
    const ids = await accountsIn("split10", [0, 1, 1, 2]);
    for (const id of ids) expect(await redeemIn(id, "SPLIT-10")).toBe("ok");
    expect(await allotments("SPLIT-10")).toEqual([
      { bucket: 0, allotted: 4, redeemed: 1 },
      { bucket: 1366, allotted: 3, redeemed: 2 },
      { bucket: 2731, allotted: 3, redeemed: 1 },
    ]);
    expect((await getPromotion(t.db, "SPLIT-10")).redemptions).toBe(4);
  });

  it("a shard that has used its share takes half the largest spare; at the cap, exhausted", async () => {
    await createPromotion(t.db, { code: "SPLIT-5", maxRedemptions: 5 }, THREE);
    // Shares 2, 2, 1: the third shard redeems 4 times, the first once, then everyone is refused.
    const ids = await accountsIn("split5", [2, 2, 2, 2, 0, 1, 2]);
    const outcomes: string[] = [];
    for (const id of ids) outcomes.push(await redeemIn(id, "SPLIT-5"));
    expect(outcomes).toEqual([
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      ...Array(2).fill("promotion_inactive"),
    ]);
    const rows = await allotments("SPLIT-5");
    expect(rows.reduce((n, r) => n + r.allotted!, 0)).toBe(5);
    expect(rows.reduce((n, r) => n + r.redeemed, 0)).toBe(5);
    expect(rows.every((r) => r.redeemed === r.allotted)).toBe(true);
    expect(rows.find((r) => r.bucket === 2731)).toEqual({ bucket: 2731, allotted: 4, redeemed: 4 });
  });

  it("30 accounts race for a cap of 7 split 3, 2, 2, 27 of them on the third shard: exactly seven, no deadlock", async () => {
    await createPromotion(t.db, { code: "SPLIT-RACE", maxRedemptions: 7 }, THREE);
    const ids = await accountsIn("splitrace", [0, 0, 1, ...Array(27).fill(2)]);
    const outcomes = await Promise.all(ids.map((id) => redeemIn(id, "SPLIT-RACE")));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(7);
    expect(outcomes.filter((o) => o === "promotion_inactive")).toHaveLength(23);
    const rows = await allotments("SPLIT-RACE");
    expect(rows.reduce((n, r) => n + r.allotted!, 0)).toBe(7);
    expect(rows.every((r) => r.redeemed === r.allotted)).toBe(true);
    // At least 4 of the 7 went to the third shard: allotment moved there.
    expect(rows.find((r) => r.bucket === 2731)!.allotted).toBeGreaterThanOrEqual(4);
    expect(await redemptionRows("SPLIT-RACE")).toHaveLength(7);
  });

  it("a shard with no row yet (a shard split after creation) gets one: from the cap, or to count in", async () => {
    await createPromotion(t.db, { code: "OLD-CAP", maxRedemptions: 4 }, ONE_SHARD);
    await createPromotion(t.db, { code: "OLD-OPEN" }, ONE_SHARD);
    const [id] = await accountsIn("newshard", [2]);
    expect(await redeemIn(id!, "OLD-CAP")).toBe("ok");
    expect(await redeemIn(id!, "OLD-OPEN")).toBe("ok");
    expect(await allotments("OLD-CAP")).toEqual([
      { bucket: 0, allotted: 2, redeemed: 0 },
      { bucket: 2731, allotted: 2, redeemed: 1 },
    ]);
    expect(await allotments("OLD-OPEN")).toEqual([
      { bucket: 0, allotted: null, redeemed: 0 },
      { bucket: 2731, allotted: null, redeemed: 1 },
    ]);
  });

  it("a refusal after a move undoes the move", async () => {
    await createPromotion(t.db, { code: "MOVE-BACK", maxRedemptions: 2 }, THREE);
    // Shares 1, 1, 0: the third shard must move allotment to redeem, and this account's
    // credit would pass 2^53 − 1.
    const [id] = await accountsIn("moveback", [2]);
    await creditAccount(t.db, { accountId: id!, amount: MAX_AMOUNT - 10 });
    const before = await allotments("MOVE-BACK");
    expect(await redeemIn(id!, "MOVE-BACK")).toBe("balance_limit_exceeded");
    expect(await allotments("MOVE-BACK")).toEqual(before);
  });
});
