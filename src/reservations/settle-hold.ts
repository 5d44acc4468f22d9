import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { appendEvents } from "../events/append-events.ts";
import { DomainError, type DomainErrorCode } from "../ledger/errors.ts";
import { bucketOfId, newIdIn } from "../ledger/ids.ts";
import { count, holdsSettled } from "../metrics.ts";
import { type Hold, type HoldRow, notPending, toHold } from "./hold.ts";

export interface SettleInput {
  holdId: string;
  /** Coins to capture, at most the hold's amount; the rest is freed. Default: the whole hold. */
  amount?: number | undefined;
}

type SettledRow = {
  o_i: number;
  o_posted: boolean;
  o_refusal: Extract<
    DomainErrorCode,
    "hold_not_found" | "hold_not_pending" | "amount_exceeds_hold"
  > | null;
  o_hold: HoldRow | null;
};

/** The refusal the statement decided, as a DomainError with its message. */
function refusal(input: SettleInput, row: SettledRow): DomainError {
  const hold = row.o_hold && toHold(row.o_hold);
  switch (row.o_refusal) {
    case "hold_not_found":
    case null:
      return new DomainError("hold_not_found", `hold ${input.holdId} does not exist`);
    case "hold_not_pending":
      return notPending(hold!, "settled");
    case "amount_exceeds_hold":
      return new DomainError(
        "amount_exceeds_hold",
        `cannot settle ${input.amount} on a hold of ${hold!.amount}`,
      );
  }
}

/**
 * Captures many pending holds, fully or partly (the rest of each is freed), in ONE statement,
 * and answers, in input order, each hold as it is now or the refusal its settle met
 * (hold_not_found, hold_not_pending, amount_exceeds_hold). A refused settle writes nothing, so
 * it never fails its batch-mates. Settling a settled hold again returns it.
 *
 * holdfast_settle_holds (src/db/sql/settle_holds.sql) flips each hold to `settled` only if it
 * is still pending, in the same statement as its debit user → @revenue, so a hold settles once
 * and a settle racing a release or an expiry either wins whole or finds the hold resolved. It
 * locks holds, then accounts, in a fixed order, so concurrent batches cannot deadlock; it
 * decides each refusal. The hold id carries its bucket, so the statement reads one bucket per
 * hold.
 */
export function settleHolds(db: Db, inputs: SettleInput[]): Promise<(Hold | DomainError)[]> {
  return atomically(db, async (tx) => {
    const { results, posted } = await decideSettles(tx, inputs);
    await appendEvents(
      tx,
      posted.map((hold) => ({
        type: "hold.settled" as const,
        accountId: hold.accountId,
        data: hold,
      })),
    );
    return results;
  });
}

async function decideSettles(
  db: Db,
  inputs: SettleInput[],
): Promise<{ results: (Hold | DomainError)[]; posted: Hold[] }> {
  const commands = inputs.map((input, i) => {
    // Postgres answers uuids in lower case; an id may be asked in upper case.
    const holdId = input.holdId.toLowerCase();
    const bucket = bucketOfId(holdId);
    return {
      i,
      bucket,
      hold_id: holdId,
      amount: input.amount ?? null,
      transaction_id: newIdIn(bucket),
    };
  });
  const rows = await db.execute<SettledRow>(
    sql`SELECT * FROM holdfast_settle_holds(${JSON.stringify(commands)}::jsonb) ORDER BY o_i`,
  );
  if (rows.length !== inputs.length) throw new Error("holdfast_settle_holds answered short");
  const posted: Hold[] = [];
  const results = rows.map((row, index) => {
    const hold = row.o_hold && toHold(row.o_hold);
    if (row.o_posted) {
      count(db, holdsSettled);
      posted.push(hold!);
    }
    if (row.o_refusal === null && hold?.status === "settled") return hold;
    if (row.o_refusal === null && hold) {
      throw new Error(`hold ${hold.id} is ${hold.status} but could not be settled`);
    }
    return refusal(inputs[index]!, row);
  });
  return { results, posted };
}

/** One settle: settleHolds of one, with its refusal thrown. */
export async function settleHold(db: Db, input: SettleInput): Promise<Hold> {
  const [result] = await settleHolds(db, [input]);
  if (result instanceof DomainError) throw result;
  return result!;
}
