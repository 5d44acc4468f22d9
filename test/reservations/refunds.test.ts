import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgErrorCode } from "../../src/db/errors.ts";
import { MAX_AMOUNT } from "../../src/db/schema/index.ts";
import { ONE_SHARD } from "../../src/db/shards.ts";
import { getAccount } from "../../src/ledger/account.ts";
import { adjustAccount } from "../../src/ledger/adjust-account.ts";
import { createPromotion } from "../../src/ledger/create-promotion.ts";
import { DomainError, isDomainError } from "../../src/ledger/errors.ts";
import { listEntries } from "../../src/ledger/list-entries.ts";
import { redeemPromotion } from "../../src/ledger/redeem-promotion.ts";
import { getHold } from "../../src/reservations/hold.ts";
import { listRefunds } from "../../src/reservations/list-refunds.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { type RefundResult, refundHold, refundHolds } from "../../src/reservations/refund-hold.ts";
import { expireOverdueHolds, releaseHold } from "../../src/reservations/release-hold.ts";
import { settleHold } from "../../src/reservations/settle-hold.ts";
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

const outcome = (r: RefundResult | DomainError) =>
  r instanceof DomainError ? r.code : r.refund.amount;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (error) {
    if (isDomainError(error)) return error.code;
    throw error;
  }
}

/** A settled purchase: `coins` credited, a hold of `amount` settled for `captured`. */
async function settledPurchase(id: string, coins: number, amount: number, captured = amount) {
  await fundedAccount(t.db, id, coins);
  const { hold } = await placeHold(t.db, { accountId: id, amount, orderId: `order-${id}` });
  await settleHold(t.db, { holdId: hold.id, amount: captured });
  return hold.id;
}

describe("refunds of settled holds", () => {
  it("gives the coins back from @revenue as one refund transaction; the hold counts them", async () => {
    const holdId = await settledPurchase("rf-full", 100, 40);
    const revenueBefore = (await getAccount(t.db, "@revenue")).settled;
    const { refund, hold, account } = await refundHold(t.db, {
      holdId,
      reason: "customer complaint",
      metadata: { ticket: 7 },
    });
    expect(refund).toMatchObject({
      holdId,
      accountId: "rf-full",
      amount: 40,
      reason: "customer complaint",
      metadata: { ticket: 7 },
    });
    expect(hold).toMatchObject({ status: "settled", settledAmount: 40, refundedAmount: 40 });
    expect(account).toMatchObject({ settled: 100, held: 0, available: 100 });
    expect(await getHold(t.db, holdId)).toEqual(hold);
    expect(BigInt((await getAccount(t.db, "@revenue")).settled)).toBe(BigInt(revenueBefore) - 40n);
    const { data } = await listEntries(t.db, { accountId: "rf-full", limit: 10 });
    expect(data[0]).toMatchObject({
      kind: "refund",
      amount: 40,
      settledAfter: 100,
      holdId,
      transactionId: refund.transactionId,
    });
    expect((await listRefunds(t.db, { holdId, limit: 10 })).data).toEqual([refund]);
  });

  it("allows partial refunds up to the settled amount, defaulting to what is left", async () => {
    const holdId = await settledPurchase("rf-partial", 100, 50, 30);
    expect((await refundHold(t.db, { holdId, amount: 10 })).hold.refundedAmount).toBe(10);
    await expect(refundHold(t.db, { holdId, amount: 21 })).rejects.toMatchObject({
      code: "refund_exceeds_settled",
      message: expect.stringContaining("20 of its 30 settled coins"),
    });
    const rest = await refundHold(t.db, { holdId });
    expect(rest.refund.amount).toBe(20);
    expect(rest.hold.refundedAmount).toBe(30);
    expect(await codeOf(refundHold(t.db, { holdId }))).toBe("refund_exceeds_settled");
    expect(await codeOf(refundHold(t.db, { holdId, amount: 1 }))).toBe("refund_exceeds_settled");
    const page1 = await listRefunds(t.db, { holdId, limit: 1 });
    expect(page1.data.map((r) => r.amount)).toEqual([20]);
    expect(page1.nextCursor).not.toBeNull();
    const before = page1.data[0]!.id;
    const page2 = await listRefunds(t.db, { holdId, limit: 1, before });
    expect(page2).toEqual({ data: [expect.objectContaining({ amount: 10 })], nextCursor: null });
    expect(await getAccount(t.db, "rf-partial")).toMatchObject({ settled: 100, held: 0 });
  });

  it("refuses a hold that is pending, released or expired, or does not exist, writing nothing", async () => {
    await fundedAccount(t.db, "rf-states", 100);
    const pending = (await placeHold(t.db, { accountId: "rf-states", amount: 10 })).hold.id;
    const released = (await placeHold(t.db, { accountId: "rf-states", amount: 10 })).hold.id;
    await releaseHold(t.db, { holdId: released });
    const expiring = (await placeHold(t.db, { accountId: "rf-states", amount: 10 })).hold.id;
    await t.db.execute(
      sql`UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = ${expiring}`,
    );
    await expireOverdueHolds(t.db, 10);
    const before = await listEntries(t.db, { accountId: "rf-states", limit: 50 });
    const results = await refundHolds(t.db, [
      { holdId: pending },
      { holdId: released },
      { holdId: expiring },
      { holdId: "01234567-89ab-7def-8123-456789abcdef" },
    ]);
    expect(results.map(outcome)).toEqual([
      "hold_not_settled",
      "hold_not_settled",
      "hold_not_settled",
      "hold_not_found",
    ]);
    expect((results[1] as DomainError).message).toContain("is released and cannot be refunded");
    expect(await listEntries(t.db, { accountId: "rf-states", limit: 50 })).toEqual(before);
    expect((await getHold(t.db, pending)).refundedAmount).toBe(0);
    await expect(
      listRefunds(t.db, { holdId: "01234567-89ab-7def-8123-456789abcdef", limit: 5 }),
    ).rejects.toMatchObject({ code: "hold_not_found" });
  });

  it("decides a batch's refunds of one hold in order, each against what the ones before left", async () => {
    const holdId = await settledPurchase("rf-batch", 100, 50);
    const other = await settledPurchase("rf-batch-2", 100, 20);
    const results = await refundHolds(t.db, [
      { holdId, amount: 30 },
      { holdId: other, amount: 5 },
      { holdId, amount: 30 },
      { holdId },
      { holdId: other },
      { holdId },
    ]);
    expect(results.map(outcome)).toEqual([
      30,
      5,
      "refund_exceeds_settled",
      20,
      15,
      "refund_exceeds_settled",
    ]);
    const third = results[3] as RefundResult;
    expect(third.hold.refundedAmount).toBe(50);
    expect(third.account).toMatchObject({ settled: 100 });
    expect((results[0] as RefundResult).account).toMatchObject({ settled: 80 });
    const { data } = await listEntries(t.db, { accountId: "rf-batch", limit: 10 });
    expect(data.slice(0, 2).map((e) => [e.kind, e.amount, e.settledAfter])).toEqual([
      ["refund", 20, 100],
      ["refund", 30, 80],
    ]);
  });

  it("a batch's refunds of one account post, and number their events, in input order across holds", async () => {
    await fundedAccount(t.db, "rf-order", 100);
    const ids: string[] = [];
    for (const amount of [20, 30]) {
      const { hold } = await placeHold(t.db, { accountId: "rf-order", amount });
      await settleHold(t.db, { holdId: hold.id });
      ids.push(hold.id);
    }
    const [a, b] = ids as [string, string];
    const results = await refundHolds(t.db, [
      { holdId: a, amount: 1 },
      { holdId: a, amount: 2 },
      { holdId: b, amount: 4 },
    ]);
    expect(results.map((r) => (r as RefundResult).account.settled)).toEqual([51, 53, 57]);
    const { data } = await listEntries(t.db, { accountId: "rf-order", limit: 3 });
    expect(data.reverse().map((e) => [e.amount, e.settledAfter])).toEqual([
      [1, 51],
      [2, 53],
      [4, 57],
    ]);
    const events = await t.db.execute<{ settled: number }>(sql`
      SELECT (data->'account'->>'settled')::int AS settled FROM events
       WHERE account_id = 'rf-order' AND type = 'hold.refunded' ORDER BY sequence`);
    expect(events.map((e) => e.settled)).toEqual([51, 53, 57]);
  });

  it("two refunds racing for the last refundable coins never both succeed", async () => {
    const holds = await Promise.all(
      Array.from({ length: 8 }, (_, i) => settledPurchase(`rf-race-${i}`, 100, 60)),
    );
    const attempts = holds.flatMap((holdId) =>
      Array.from({ length: 5 }, () => codeOf(refundHold(t.db, { holdId, amount: 40 }))),
    );
    const codes = await Promise.all(attempts);
    for (let i = 0; i < holds.length; i++) {
      const mine = codes.slice(i * 5, i * 5 + 5);
      expect(mine.filter((c) => c === "ok")).toHaveLength(1);
      expect(mine.filter((c) => c === "refund_exceeds_settled")).toHaveLength(4);
      expect((await getHold(t.db, holds[i]!)).refundedAmount).toBe(40);
      expect(await getAccount(t.db, `rf-race-${i}`)).toMatchObject({ settled: 80 });
    }
  });

  it("a refund that waited for another one's lock sees what that one took", async () => {
    const holdId = await settledPurchase("rf-wait", 100, 30);
    let second: Promise<string> | undefined;
    await t.db.transaction(async (tx) => {
      await refundHold(tx, { holdId, amount: 20 });
      second = codeOf(refundHold(t.db, { holdId, amount: 20 }));
      await someoneWaitsOnALock(t.sql);
    });
    expect(await second!).toBe("refund_exceeds_settled");
    expect((await getHold(t.db, holdId)).refundedAmount).toBe(20);
  });

  it("refuses a refund past 2^53 - 1 coins, writing nothing", async () => {
    const holdId = await settledPurchase("rf-limit", 100, 10);
    await adjustAccount(t.db, { accountId: "rf-limit", amount: MAX_AMOUNT - 95, reason: "top" });
    const results = await refundHolds(t.db, [
      { holdId, amount: 6 },
      { holdId, amount: 5 },
    ]);
    expect(results.map(outcome)).toEqual(["balance_limit_exceeded", 5]);
    expect((await getHold(t.db, holdId)).refundedAmount).toBe(5);
    expect((await getAccount(t.db, "rf-limit")).settled).toBe(MAX_AMOUNT);
  });

  it("the database refuses a refund row changed, a refunded amount shrunk, or one on a pending hold", async () => {
    const holdId = await settledPurchase("rf-guard", 100, 10);
    await refundHold(t.db, { holdId, amount: 4 });
    const attempts = [
      sql`UPDATE refunds SET amount = 1 WHERE hold_id = ${holdId}`,
      sql`DELETE FROM refunds WHERE hold_id = ${holdId}`,
      sql`UPDATE holds SET refunded_amount = 2 WHERE id = ${holdId}`,
      sql`UPDATE holds SET refunded_amount = 11 WHERE id = ${holdId}`,
      sql`UPDATE holds SET refunded_amount = 5, reason = 'x' WHERE id = ${holdId}`,
    ];
    for (const attempt of attempts) {
      const error = await t.db.execute(attempt).catch((e: unknown) => e);
      expect(["23001", "23514"]).toContain(pgErrorCode(error));
    }
    const pending = (await placeHold(t.db, { accountId: "rf-guard", amount: 5 })).hold.id;
    const error = await t.db
      .execute(sql`UPDATE holds SET refunded_amount = 1 WHERE id = ${pending}`)
      .catch((e: unknown) => e);
    expect(["23001", "23514"]).toContain(pgErrorCode(error));
  });
});

describe("the serial order purchase, promotion, refund", () => {
  it("50 coins; buy 20, settled (30); DOUBLE (60); refund the purchase (80)", async () => {
    await fundedAccount(t.db, "story", 50);
    const { hold } = await placeHold(t.db, { accountId: "story", amount: 20 });
    await settleHold(t.db, { holdId: hold.id });
    expect(await getAccount(t.db, "story")).toMatchObject({ settled: 30, available: 30 });
    await createPromotion(t.db, { code: "RFDOUBLE" }, ONE_SHARD);
    const { redemption } = await redeemPromotion(
      t.db,
      { code: "RFDOUBLE", accountId: "story" },
      ONE_SHARD,
    );
    expect(redemption).toMatchObject({ basis: 30, credited: 30 });
    const { account } = await refundHold(t.db, { holdId: hold.id });
    expect(account).toMatchObject({ settled: 80, held: 0, available: 80 });
    const { data } = await listEntries(t.db, { accountId: "story", limit: 10 });
    expect(data.reverse().map((e) => [e.seq, e.kind, e.amount, e.settledAfter])).toEqual([
      [1, "credit", 50, 50],
      [2, "purchase", -20, 30],
      [3, "promotion", 30, 60],
      [4, "refund", 20, 80],
    ]);
  });
});

describe("admin adjustments", () => {
  it("posts a signed adjustment against @adjustments", async () => {
    await fundedAccount(t.db, "adj", 50);
    const up = await adjustAccount(t.db, {
      accountId: "adj",
      amount: 25,
      reason: "goodwill",
      metadata: { agent: "kim" },
    });
    expect(up.adjustment).toMatchObject({ accountId: "adj", amount: 25, reason: "goodwill" });
    expect(up.account).toMatchObject({ settled: 75, available: 75 });
    const down = await adjustAccount(t.db, { accountId: "adj", amount: -70, reason: "chargeback" });
    expect(down.account).toMatchObject({ settled: 5 });
    const { data } = await listEntries(t.db, { accountId: "adj", limit: 10 });
    expect(data.slice(0, 2).map((e) => [e.kind, e.amount, e.transactionId])).toEqual([
      ["adjustment", -70, down.adjustment.transactionId],
      ["adjustment", 25, up.adjustment.transactionId],
    ]);
    const system = await listEntries(t.db, { accountId: "@adjustments", limit: 10 });
    expect(system.data.slice(0, 2).map((e) => e.amount)).toEqual([70, -25]);
  });

  it("never takes available below 0: a negative adjustment over it is refused and writes nothing", async () => {
    await fundedAccount(t.db, "adj-held", 50);
    await placeHold(t.db, { accountId: "adj-held", amount: 30 });
    expect(
      await codeOf(adjustAccount(t.db, { accountId: "adj-held", amount: -21, reason: "x" })),
    ).toBe("insufficient_funds");
    expect(await getAccount(t.db, "adj-held")).toMatchObject({ settled: 50, held: 30 });
    await adjustAccount(t.db, { accountId: "adj-held", amount: -20, reason: "x" });
    expect(await getAccount(t.db, "adj-held")).toMatchObject({ settled: 30, available: 0 });
    expect(await codeOf(adjustAccount(t.db, { accountId: "nobody", amount: 1, reason: "x" }))).toBe(
      "account_not_found",
    );
  });

  it("concurrent negative adjustments never overdraw the account", async () => {
    await fundedAccount(t.db, "adj-race", 100);
    const codes = await Promise.all(
      Array.from({ length: 20 }, () =>
        codeOf(adjustAccount(t.db, { accountId: "adj-race", amount: -7, reason: "race" })),
      ),
    );
    expect(codes.filter((c) => c === "ok")).toHaveLength(14);
    expect(await getAccount(t.db, "adj-race")).toMatchObject({ settled: 2 });
  });
});
