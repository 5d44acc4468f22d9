import { sql } from "drizzle-orm";
import type { Database, Db } from "../db/client.ts";
import { inLockOrder } from "../db/lock-order.ts";
import { DomainError, isDomainError } from "../ledger/errors.ts";
import { newId } from "../ledger/ids.ts";
import { post } from "../ledger/post-transaction.ts";
import { holdsSettled } from "../metrics.ts";
import { getHold, type Hold, notPending } from "./hold.ts";

export interface SettleInput {
  holdId: string;
  /** Coins to capture, at most the hold's amount; the rest is freed. Default: the whole hold. */
  amount?: number | undefined;
}

/**
 * Captures a pending hold: one statement flips the hold to `settled` (only if it is still
 * pending) and posts the debit user → @revenue, so the status change and its ledger effect
 * commit together and a hold can be settled once. Settling a settled hold again returns it.
 */
export async function settleHold(db: Db, input: SettleInput): Promise<Hold> {
  const transactionId = newId();
  const amount = input.amount ?? null;
  const posted = await post(
    db,
    sql`h AS (
          UPDATE holds
             SET status = 'settled', settled_amount = COALESCE(${amount}::int8, amount),
                 transaction_id = ${transactionId}, resolved_at = now()
           WHERE id = ${input.holdId} AND status = 'pending' AND COALESCE(${amount}::int8, amount) <= amount
          RETURNING id, account_id, amount, settled_amount
        ),
        src AS (SELECT account_id, -settled_amount AS delta, amount AS release_held, id AS hold_id FROM h)`,
    { transactionId, kind: "purchase", counterparty: "@revenue" },
  );
  const hold = await getHold(db, input.holdId);
  if (posted) {
    holdsSettled.inc();
    return hold;
  }
  if (hold.status === "settled") return hold;
  if (hold.status !== "pending") throw notPending(hold, "settled");
  if (amount !== null && amount > hold.amount) {
    throw new DomainError(
      "amount_exceeds_hold",
      `cannot settle ${amount} on a hold of ${hold.amount}`,
    );
  }
  throw new Error(`hold ${hold.id} is pending but could not be settled`);
}

export type BatchedSettle = SettleInput & { accountId: string };

/**
 * Settles many holds in ONE transaction, one result per input, in order: the statements are
 * pipelined in account order (so two batches lock accounts in the same order), and a
 * refusal (hold_not_pending, amount_exceeds_hold) is that input's result alone, since a
 * refused settle writes nothing. Any other error aborts the transaction and is thrown.
 */
export async function settleHolds(
  db: Database,
  inputs: BatchedSettle[],
): Promise<PromiseSettledResult<Hold>[]> {
  const order = inLockOrder(inputs, (input) => input.accountId);
  return db.transaction(async (tx) => {
    const settled = await Promise.allSettled(order.map(({ item }) => settleHold(tx, item)));
    const failure = settled.find((r) => r.status === "rejected" && !isDomainError(r.reason));
    if (failure) throw (failure as PromiseRejectedResult).reason;
    const results: PromiseSettledResult<Hold>[] = new Array(inputs.length);
    order.forEach(({ index }, i) => {
      results[index] = settled[i]!;
    });
    return results;
  });
}
