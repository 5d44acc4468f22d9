import { sql } from "drizzle-orm";
import type { Database, Db } from "../db/client.ts";
import { inLockOrder } from "../db/lock-order.ts";
import { DomainError, isDomainError } from "../ledger/errors.ts";
import { newId } from "../ledger/ids.ts";
import { post } from "../ledger/post-transaction.ts";
import { holdsSettled } from "../metrics.ts";
import { findHold, findHolds, type Hold, notPending } from "./hold.ts";

export interface SettleInput {
  holdId: string;
  /** Coins to capture, at most the hold's amount; the rest is freed. Default: the whole hold. */
  amount?: number | undefined;
}

/**
 * The settle itself: one statement flips the hold to `settled` (only if it is still pending
 * and the amount fits) and posts the debit user → @revenue, so the status change and its
 * ledger effect commit together and a hold can be settled once. True if it settled.
 */
async function postSettle(db: Db, input: SettleInput): Promise<boolean> {
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
  if (posted) holdsSettled.inc();
  return posted !== undefined;
}

/** The answer to a settle, given whether it posted and the hold as it is now. */
function settleOutcome(input: SettleInput, posted: boolean, hold: Hold | undefined): Hold {
  if (!hold) throw new DomainError("hold_not_found", `hold ${input.holdId} does not exist`);
  if (posted || hold.status === "settled") return hold;
  if (hold.status !== "pending") throw notPending(hold, "settled");
  if (input.amount !== undefined && input.amount > hold.amount) {
    throw new DomainError(
      "amount_exceeds_hold",
      `cannot settle ${input.amount} on a hold of ${hold.amount}`,
    );
  }
  throw new Error(`hold ${hold.id} is pending but could not be settled`);
}

/**
 * Captures a pending hold, fully or partly (the rest is freed). Settling a settled hold again
 * returns it.
 */
export async function settleHold(db: Db, input: SettleInput): Promise<Hold> {
  const posted = await postSettle(db, input);
  return settleOutcome(input, posted, await findHold(db, input.holdId));
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
    const posted = await Promise.all(order.map(({ item }) => postSettle(tx, item)));
    // The holds as the settles left them, in one read.
    const holds = await findHolds(
      tx,
      order.map(({ item }) => item.holdId),
    );
    const results: PromiseSettledResult<Hold>[] = new Array(inputs.length);
    order.forEach(({ item, index }, i) => {
      try {
        results[index] = { status: "fulfilled", value: settleOutcome(item, posted[i]!, holds[i]) };
      } catch (error) {
        if (!isDomainError(error)) throw error;
        results[index] = { status: "rejected", reason: error };
      }
    });
    return results;
  });
}
