import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "../ledger/errors.ts";
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
