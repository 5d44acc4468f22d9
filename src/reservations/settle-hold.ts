import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "../ledger/errors.ts";
import { newId } from "../ledger/ids.ts";
import { count, holdsSettled } from "../metrics.ts";
import { type Hold, type HoldRow, notPending, toHold } from "./hold.ts";

export interface SettleInput {
  holdId: string;
  /** Coins to capture, at most the hold's amount; the rest is freed. Default: the whole hold. */
  amount?: number | undefined;
}

type SettledRow = { o_i: number; o_posted: boolean; o_hold: HoldRow | null };

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
 * Captures many pending holds, fully or partly (the rest of each is freed), in ONE statement,
 * and answers, in input order, each hold as it is now or the refusal its settle met
 * (hold_not_found, hold_not_pending, amount_exceeds_hold). A refused settle writes nothing, so
 * it never fails its batch-mates. Settling a settled hold again returns it.
 *
 * holdfast_settle_holds (drizzle/0004) flips each hold to `settled` only if it is still
 * pending, in the same statement as its debit user → @revenue, so a hold settles once and a
 * settle racing a release or an expiry either wins whole or finds the hold resolved. It locks
 * holds, then accounts, in a fixed order, so concurrent batches cannot deadlock.
 */
export async function settleHolds(db: Db, inputs: SettleInput[]): Promise<(Hold | DomainError)[]> {
  const commands = inputs.map((input, i) => ({
    i,
    hold_id: input.holdId,
    amount: input.amount ?? null,
    transaction_id: newId(),
  }));
  const rows = await db.execute<SettledRow>(
    sql`SELECT * FROM holdfast_settle_holds(${JSON.stringify(commands)}::jsonb) ORDER BY o_i`,
  );
  if (rows.length !== inputs.length) throw new Error("holdfast_settle_holds answered short");
  const settledBy = new Map(
    rows.flatMap((row, index) => (row.o_posted ? [[row.o_hold!.id, index] as const] : [])),
  );
  return rows.map((row, index) => {
    if (row.o_posted) count(db, holdsSettled);
    const now = row.o_hold ? toHold(row.o_hold) : undefined;
    // A settle before the one that settled its hold met the hold pending, as in serial order.
    const met =
      now && index < (settledBy.get(now.id) ?? -1) ? { ...now, status: "pending" as const } : now;
    try {
      return settleOutcome(inputs[index]!, row.o_posted, met);
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
  });
}

/** One settle: settleHolds of one, with its refusal thrown. */
export async function settleHold(db: Db, input: SettleInput): Promise<Hold> {
  const [result] = await settleHolds(db, [input]);
  if (result instanceof DomainError) throw result;
  return result!;
}
