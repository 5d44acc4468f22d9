import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getAccount } from "../../src/ledger/account.ts";
import { findHolds, getHold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import {
  expireHold,
  expireOverdueHolds,
  releaseHold,
} from "../../src/reservations/release-hold.ts";
import { settleHold } from "../../src/reservations/settle-hold.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase({ max: 40 });
});
afterAll(async () => {
  await expectLedgerConsistent(t.db);
  await t.drop();
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: { code?: string }) => e.code ?? String(e),
  );

describe("holds", () => {
  it("40 concurrent purchases of 7 on 100 coins: exactly 14 holds", async () => {
    const id = await fundedAccount(t.db, "race-7", 100);
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, () => codeOf(placeHold(t.db, { accountId: id, amount: 7 }))),
    );
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(14);
    expect(outcomes.filter((o) => o === "insufficient_funds")).toHaveLength(26);
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 100, held: 98, available: 2 });
  });

  it("settles in full: one purchase transaction to @revenue, held freed", async () => {
    const id = await fundedAccount(t.db, "settle-full", 50);
    const { hold, account } = await placeHold(t.db, { accountId: id, amount: 20, orderId: "o-1" });
    expect(account).toMatchObject({ settled: 50, held: 20, available: 30 });
    const settled = await settleHold(t.db, { holdId: hold.id });
    expect(settled).toMatchObject({ status: "settled", settledAmount: 20, orderId: "o-1" });
    expect(settled.resolvedAt).not.toBeNull();
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 30, held: 0, available: 30 });
    const entries = await t.db.execute<{ account_id: string; amount: number; kind: string }>(
      sql`SELECT account_id, amount, kind FROM entries WHERE hold_id = ${hold.id} ORDER BY amount`,
    );
    expect(entries.map((e) => [e.account_id, e.amount, e.kind])).toEqual([
      [id, -20, "purchase"],
      ["@revenue", 20, "purchase"],
    ]);
    // A repeated settle returns the settled hold and posts nothing.
    expect(await settleHold(t.db, { holdId: hold.id })).toEqual(settled);
    expect(await settleHold(t.db, { holdId: hold.id, amount: 5 })).toEqual(settled);
  });

  it("settles partially: the rest is freed", async () => {
    const id = await fundedAccount(t.db, "settle-part", 50);
    const { hold } = await placeHold(t.db, { accountId: id, amount: 20 });
    expect(await codeOf(settleHold(t.db, { holdId: hold.id, amount: 21 }))).toBe(
      "amount_exceeds_hold",
    );
    const settled = await settleHold(t.db, { holdId: hold.id, amount: 12 });
    expect(settled.settledAmount).toBe(12);
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 38, held: 0, available: 38 });
  });

  it("release posts nothing; a released hold cannot be settled; expiry waits for the deadline", async () => {
    const id = await fundedAccount(t.db, "release", 10);
    const { hold } = await placeHold(t.db, { accountId: id, amount: 10 });
    expect(await expireHold(t.db, hold.id)).toMatchObject({ kind: "not_due" });
    const released = await releaseHold(t.db, { holdId: hold.id, reason: "out of stock" });
    expect(released).toMatchObject({
      status: "released",
      reason: "out of stock",
      settledAmount: null,
    });
    expect(await releaseHold(t.db, { holdId: hold.id })).toEqual(released);
    expect(await codeOf(settleHold(t.db, { holdId: hold.id }))).toBe("hold_not_pending");
    expect(await expireHold(t.db, hold.id)).toMatchObject({ kind: "resolved" });
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 10, held: 0 });
    expect(
      await codeOf(releaseHold(t.db, { holdId: "01234567-89ab-7def-8123-456789abcdef" })),
    ).toBe("hold_not_found");
  });

  it("settle, release and expire racing on one hold: exactly one wins", async () => {
    for (let round = 0; round < 15; round++) {
      const id = await fundedAccount(t.db, `tri-${round}`, 30);
      const { hold } = await placeHold(t.db, { accountId: id, amount: 30, expiresInSeconds: 1 });
      await t.db.execute(
        sql`UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = ${hold.id}`,
      );
      const [s, r, e] = await Promise.all([
        codeOf(settleHold(t.db, { holdId: hold.id })),
        codeOf(releaseHold(t.db, { holdId: hold.id })),
        expireHold(t.db, hold.id).then((o) => o.kind),
      ]);
      const final = await getHold(t.db, hold.id);
      const winners = [
        s === "ok" && final.status === "settled",
        r === "ok" && final.status === "released",
        e === "expired",
      ];
      expect(winners.filter(Boolean)).toHaveLength(1);
      const account = await getAccount(t.db, id);
      expect(account.held).toBe(0);
      expect(account.settled).toBe(final.status === "settled" ? 0 : 30);
    }
  });

  it("the sweep expires every overdue hold once, and none that are not due", async () => {
    const id = await fundedAccount(t.db, "sweep", 100);
    const due = await Promise.all(
      [1, 2, 3].map(() => placeHold(t.db, { accountId: id, amount: 10 })),
    );
    const later = await placeHold(t.db, { accountId: id, amount: 10 });
    for (const { hold } of due) {
      await t.db.execute(
        sql`UPDATE holds SET expires_at = now() - interval '1 minute' WHERE id = ${hold.id}`,
      );
    }
    const [a, b] = await Promise.all([
      expireOverdueHolds(t.db, 100),
      expireOverdueHolds(t.db, 100),
    ]);
    expect([...a, ...b].sort()).toEqual(due.map((d) => d.hold.id).sort());
    expect((await getHold(t.db, later.hold.id)).status).toBe("pending");
    expect(await getAccount(t.db, id)).toMatchObject({ settled: 100, held: 10 });
  });

  it("the database refuses to change a terminal hold", async () => {
    const id = await fundedAccount(t.db, "terminal", 10);
    const { hold } = await placeHold(t.db, { accountId: id, amount: 5 });
    await releaseHold(t.db, { holdId: hold.id });
    await expect(
      t.db.execute(
        sql`UPDATE holds SET status = 'pending', resolved_at = NULL WHERE id = ${hold.id}`,
      ),
    ).rejects.toThrow();
    await expect(t.db.execute(sql`DELETE FROM holds WHERE id = ${hold.id}`)).rejects.toThrow();
  });
});

describe("findHolds", () => {
  it("reads many holds in one query, in the order asked, undefined for a missing one", async () => {
    const id = await fundedAccount(t.db, "find-many", 10);
    const a = await placeHold(t.db, { accountId: id, amount: 1 });
    const b = await placeHold(t.db, { accountId: id, amount: 2 });
    const ghost = "01234567-89ab-7def-8123-456789abcdef";
    const found = await findHolds(t.db, [b.hold.id, ghost, a.hold.id, b.hold.id]);
    expect(found).toEqual([b.hold, undefined, a.hold, b.hold]);
    expect(await findHolds(t.db, [a.hold.id.toUpperCase()])).toEqual([a.hold]);
  });
});
