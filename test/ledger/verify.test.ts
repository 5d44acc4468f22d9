import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ONE_SHARD } from "../../src/db/shards.ts";
import { appendEvents, setEventsWritten } from "../../src/events/append-events.ts";
import { placeEvents } from "../../src/events/feeds.ts";
import { adjustAccount } from "../../src/ledger/adjust-account.ts";
import { createAccount } from "../../src/ledger/create-account.ts";
import { createPromotion } from "../../src/ledger/create-promotion.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { bucketOf, newIdIn } from "../../src/ledger/ids.ts";
import { redeemPromotion } from "../../src/ledger/redeem-promotion.ts";
import { type VerifyReport, verifyLedger } from "../../src/ledger/verify.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { refundHold } from "../../src/reservations/refund-hold.ts";
import { settleHold } from "../../src/reservations/settle-hold.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

const GRACE = { overdueGraceMs: 60_000 };

const SUM_ZERO_PER_TRANSACTION = "each ledger transaction has two or more entries summing to zero";
const SUM_ZERO_OVERALL = "the settled balances of all accounts sum to zero";
const SETTLED_FROM_ENTRIES = "each account's stored settled balance equals the sum of its entries";
const HELD_FROM_HOLDS = "each account's stored held balance equals the sum of its pending holds";
const RUNNING_BALANCES =
  "each user account's entries are numbered 1, 2, 3, … with running balances";
const OVERDUE = "no pending hold is overdue by more than the sweep interval";
const IN_BUCKET = "every row is in its account's bucket, and a pending hold's id carries it";
const REFUNDS_WITHIN_SETTLED =
  "a hold's refunds sum to its refundedAmount, at most its settledAmount, on settled holds only";
const ONE_REFUND_TRANSACTION =
  "each refund posts exactly one refund transaction, and each refund transaction is a refund's";
const EVENTS_NUMBERED =
  "each account's events are numbered 1, 2, 3, … without gaps, placed in that order";
const FEED_PAST_ITS_EVENTS = "each shard's feed is past every position it gave";
const EVENT_PER_CHANGE =
  "each account has exactly one event per change of its entries, holds, refunds and redemptions";
const ALLOTMENTS = "each promotion's allotments count its redemptions and add up to its cap";
const ADJUSTMENTS_BALANCED =
  "@adjustments balances its entries, and adjustments are between it and a user account";

/** Each test tampers with its own database, so each gets a fresh one. */
let t: TestDatabase;
beforeEach(async () => {
  t = await createTestDatabase({ max: 4 });
  for (const [id, credits] of [
    ["alice", [50, 25]],
    ["bob", [500]],
    ["carol", [1, 2, 3]],
  ] as const) {
    await createAccount(t.db, { id });
    for (const amount of credits) await creditAccount(t.db, { accountId: id, amount });
  }
});
afterEach(() => t.drop());

/** Violations per check name; only the failing checks appear. */
const failures = (report: VerifyReport) =>
  Object.fromEntries(
    report.checks.filter((c) => c.violations > 0).map((c) => [c.name, c.violations]),
  );

describe("verifyLedger", () => {
  it("is ok on a consistent ledger and counts what it saw", async () => {
    const report = await verifyLedger(t.db, GRACE);
    expect(failures(report)).toEqual({});
    expect(report.ok).toBe(true);
    expect(report.totals).toEqual({ accounts: 7, transactions: 6, entries: 12, holds: 0 });
    expect(report.checks.map((c) => c.invariant)).toEqual(
      expect.arrayContaining([1, 2, 3, 4, 6, 7, 8, 9, "§2", "§8"]),
    );
    for (const c of report.checks) expect(c.examples).toEqual([]);
  });

  it("fails when a user's stored settled balance is tampered", async () => {
    // The CHECK constraint allows this: settled stays ≥ held and within bounds.
    await t.sql`UPDATE accounts SET settled = settled + 1 WHERE id = 'alice'`;
    const report = await verifyLedger(t.db, GRACE);
    expect(report.ok).toBe(false);
    expect(failures(report)).toEqual({ [SUM_ZERO_OVERALL]: 1, [SETTLED_FROM_ENTRIES]: 1 });
    const check = report.checks.find((c) => c.name === SETTLED_FROM_ENTRIES)!;
    expect(check.examples).toHaveLength(1);
    expect(check.examples[0]).toMatchObject({ account_id: "alice" });
    expect(Number(check.examples[0]!.stored)).toBe(76);
    expect(Number(check.examples[0]!.from_entries)).toBe(75);
  });

  it("fails when a system account's row in one bucket is tampered", async () => {
    await t.sql`
      UPDATE accounts SET settled = settled - 7 WHERE id = '@issuance' AND bucket = 3`;
    const report = await verifyLedger(t.db, GRACE);
    expect(report.ok).toBe(false);
    expect(failures(report)).toEqual({ [SUM_ZERO_OVERALL]: 1, [SETTLED_FROM_ENTRIES]: 1 });
    const check = report.checks.find((c) => c.name === SETTLED_FROM_ENTRIES)!;
    expect(check.examples[0]).toMatchObject({ account_id: "@issuance" });
  });

  it("fails when an entry's amount is tampered", async () => {
    // Entries are append-only by trigger; this private database may switch it off.
    await t.sql`ALTER TABLE entries DISABLE TRIGGER entries_append_only`;
    await t.sql`UPDATE entries SET amount = amount + 1 WHERE account_id = 'carol' AND seq = 2`;
    const report = await verifyLedger(t.db, GRACE);
    expect(report.ok).toBe(false);
    const failed = failures(report);
    expect(failed[SUM_ZERO_PER_TRANSACTION]).toBe(1);
    expect(failed[SETTLED_FROM_ENTRIES]).toBe(1);
    // seq 2 and seq 3 no longer match their running sums.
    expect(failed[RUNNING_BALANCES]).toBe(2);
    expect(failed[SUM_ZERO_OVERALL]).toBeUndefined();
  });

  it("fails when a promotion's allotments lose a redemption or grow past its cap", async () => {
    await createPromotion(t.db, { code: "CAPPED", maxRedemptions: 3 }, ONE_SHARD);
    await createPromotion(t.db, { code: "OPEN" }, ONE_SHARD);
    await redeemPromotion(t.db, { code: "CAPPED", accountId: "alice" }, ONE_SHARD);
    await redeemPromotion(t.db, { code: "OPEN", accountId: "bob" }, ONE_SHARD);
    expect(failures(await verifyLedger(t.db, GRACE))).toEqual({});
    await t.sql`UPDATE promotion_allotments SET allotted = 4 WHERE promotion_code = 'CAPPED'`;
    await t.sql`UPDATE promotion_allotments SET redeemed = 0 WHERE promotion_code = 'OPEN'`;
    const report = await verifyLedger(t.db, GRACE);
    expect(failures(report)).toEqual({ [ALLOTMENTS]: 2 });
  });

  it("fails when an account's held balance is tampered", async () => {
    await t.sql`UPDATE accounts SET held = 10 WHERE id = 'bob'`;
    const report = await verifyLedger(t.db, GRACE);
    expect(report.ok).toBe(false);
    expect(failures(report)).toEqual({ [HELD_FROM_HOLDS]: 1 });
    const check = report.checks.find((c) => c.name === HELD_FROM_HOLDS)!;
    expect(check.examples[0]).toMatchObject({ account_id: "bob" });
  });

  it("fails (§8) on a pending hold whose id does not carry its bucket", async () => {
    const bucket = bucketOf("alice");
    const holdId = newIdIn((bucket + 1) % 4096);
    await t.sql.begin(async (sql) => {
      await sql`
        INSERT INTO holds (bucket, id, account_id, amount, status, expires_at)
        VALUES (${bucket}, ${holdId}, 'alice', 20, 'pending', now() + interval '1 hour')`;
      await sql`UPDATE accounts SET held = held + 20 WHERE id = 'alice'`;
    });
    await appendEvents(t.db, [{ type: "hold.placed", accountId: "alice", data: {} }]);
    const report = await verifyLedger(t.db, GRACE);
    expect(failures(report)).toEqual({ [IN_BUCKET]: 1 });
    const check = report.checks.find((c) => c.name === IN_BUCKET)!;
    expect(check.examples[0]).toMatchObject({ what: "hold", id: holdId });
  });

  it("fails (invariant 6) on a pending hold past its deadline beyond the grace", async () => {
    const bucket = bucketOf("alice");
    const holdId = newIdIn(bucket);
    await t.sql.begin(async (sql) => {
      await sql`
        INSERT INTO holds (bucket, id, account_id, amount, status, expires_at)
        VALUES (${bucket}, ${holdId}, 'alice', 20, 'pending', now() - interval '1 hour')`;
      await sql`UPDATE accounts SET held = held + 20 WHERE id = 'alice'`;
    });
    await appendEvents(t.db, [{ type: "hold.placed", accountId: "alice", data: {} }]);

    const strict = await verifyLedger(t.db, { overdueGraceMs: 1000 });
    expect(strict.ok).toBe(false);
    expect(failures(strict)).toEqual({ [OVERDUE]: 1 });
    const check = strict.checks.find((c) => c.name === OVERDUE)!;
    expect(check.invariant).toBe(6);
    expect(check.examples[0]).toMatchObject({ hold_id: holdId, account_id: "alice" });

    // Within a grace longer than the overdue time, the same hold is not a violation.
    const lenient = await verifyLedger(t.db, { overdueGraceMs: 2 * 60 * 60 * 1000 });
    expect(lenient.ok).toBe(true);
    expect(lenient.totals.holds).toBe(1);
  });

  describe("refunds and adjustments (invariant 8)", () => {
    /** Alice's hold of 30, settled, refunded 10; refund rows and holds may be tampered here. */
    async function refunded() {
      const { hold } = await placeHold(t.db, { accountId: "alice", amount: 30 });
      await settleHold(t.db, { holdId: hold.id });
      const { refund } = await refundHold(t.db, { holdId: hold.id, amount: 10 });
      await t.sql`ALTER TABLE refunds DISABLE TRIGGER refunds_append_only`;
      await t.sql`ALTER TABLE holds DISABLE TRIGGER holds_terminal_never_change`;
      await t.sql`ALTER TABLE holds DROP CONSTRAINT holds_refunded_within_settled`;
      return { hold, refund };
    }

    it("is ok after refunds and adjustments of both signs", async () => {
      await refunded();
      await adjustAccount(t.db, { accountId: "bob", amount: -20, reason: "chargeback" });
      await adjustAccount(t.db, { accountId: "carol", amount: 4, reason: "goodwill" });
      expect(failures(await verifyLedger(t.db, GRACE))).toEqual({});
    });

    it("fails when a hold's refunds exceed its settled amount", async () => {
      const { hold } = await refunded();
      await t.sql`UPDATE refunds SET amount = 31 WHERE hold_id = ${hold.id}`;
      await t.sql`UPDATE holds SET refunded_amount = 31 WHERE id = ${hold.id}`;
      const failed = failures(await verifyLedger(t.db, GRACE));
      expect(failed[REFUNDS_WITHIN_SETTLED]).toBe(1);
      expect(failed[ONE_REFUND_TRANSACTION]).toBe(1);
    });

    it("fails when a hold's refunded amount is not the sum of its refunds", async () => {
      const { hold } = await refunded();
      await t.sql`UPDATE holds SET refunded_amount = 9 WHERE id = ${hold.id}`;
      expect(failures(await verifyLedger(t.db, GRACE))).toEqual({ [REFUNDS_WITHIN_SETTLED]: 1 });
    });

    it("fails when a refund lost its transaction, or a refund transaction its refund", async () => {
      const { refund } = await refunded();
      await t.sql`ALTER TABLE refunds DROP CONSTRAINT refunds_bucket_transaction_id_ledger_transactions_bucket_id_fk`;
      await t.sql`UPDATE refunds SET transaction_id = ${newIdIn(bucketOf("alice"))}
                   WHERE id = ${refund.id}`;
      const check = (await verifyLedger(t.db, GRACE)).checks.find(
        (c) => c.name === ONE_REFUND_TRANSACTION,
      )!;
      expect(check.violations).toBe(2);
    });

    it("fails when @adjustments is not the other side of an adjustment", async () => {
      await adjustAccount(t.db, { accountId: "bob", amount: 5, reason: "x" });
      await t.sql`ALTER TABLE entries DISABLE TRIGGER entries_append_only`;
      await t.sql`UPDATE entries SET kind = 'credit' WHERE account_id = '@adjustments'`;
      const failed = failures(await verifyLedger(t.db, GRACE));
      expect(failed[ADJUSTMENTS_BALANCED]).toBe(1);
    });

    it("fails when @adjustments's rows do not balance its entries", async () => {
      await adjustAccount(t.db, { accountId: "bob", amount: 5, reason: "x" });
      await t.sql`UPDATE accounts SET settled = settled + 1 WHERE id = '@adjustments' AND bucket = 0`;
      const failed = failures(await verifyLedger(t.db, GRACE));
      expect(failed[ADJUSTMENTS_BALANCED]).toBe(1);
    });
  });

  describe("events (invariant 9)", () => {
    it("fails when an account's events have a gap, or a change has no event", async () => {
      await t.sql`ALTER TABLE events DISABLE TRIGGER events_placed_once`;
      await t.sql`DELETE FROM events WHERE account_id = 'carol' AND sequence = 2`;
      const failed = failures(await verifyLedger(t.db, GRACE));
      // Carol's events 3 and 4 are now her second and third.
      expect(failed).toEqual({ [EVENTS_NUMBERED]: 2, [EVENT_PER_CHANGE]: 1 });
    });

    it("with HOLDFAST_EVENTS=off, a change writes no event and verify reports it", async () => {
      setEventsWritten(false);
      try {
        await creditAccount(t.db, { accountId: "bob", amount: 1 });
      } finally {
        setEventsWritten(true);
      }
      expect(failures(await verifyLedger(t.db, GRACE))).toEqual({ [EVENT_PER_CHANGE]: 1 });
    });

    it("fails when an event has no change, one account's events are placed out of order, or past its feed", async () => {
      await appendEvents(t.db, [{ type: "hold.placed", accountId: "bob", data: {} }]);
      await placeEvents(t.db);
      await t.sql`ALTER TABLE events DISABLE TRIGGER events_placed_once`;
      await t.sql`UPDATE events SET position = 1000 - position WHERE account_id = 'carol'`;
      const failed = failures(await verifyLedger(t.db, GRACE));
      expect(failed).toEqual({
        [EVENTS_NUMBERED]: 3,
        [EVENT_PER_CHANGE]: 1,
        [FEED_PAST_ITS_EVENTS]: 1,
      });
    });
  });
});
