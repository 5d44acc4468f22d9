import { expect } from "vitest";
import type { Db } from "../../src/db/client.ts";
import { createAccount } from "../../src/ledger/create-account.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { verifyLedger } from "../../src/ledger/verify.ts";

/** A user account holding `coins` settled coins. */
export async function fundedAccount(db: Db, id: string, coins: number): Promise<string> {
  await createAccount(db, { id });
  if (coins > 0) await creditAccount(db, { accountId: id, amount: coins });
  return id;
}

/** Fails the test with the report when any invariant of DESIGN.md section 3 is violated. */
export async function expectLedgerConsistent(db: Db, overdueGraceMs = 60_000): Promise<void> {
  const report = await verifyLedger(db, { overdueGraceMs });
  const failed = report.checks.filter((c) => c.violations > 0);
  expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
}
