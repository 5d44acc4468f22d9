import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { withHoldEvents } from "../events/append-events.ts";
import { type Account, type AccountRow, toAccount } from "../ledger/account.ts";
import { DomainError, type DomainErrorCode } from "../ledger/errors.ts";
import { bucketOfId, newIdIn } from "../ledger/ids.ts";
import { toIso } from "../ledger/rows.ts";
import { type Hold, type HoldRow, toHold } from "./hold.ts";

export interface RefundInput {
  holdId: string;
  /** Coins to give back, at most what is still refundable. Default: all of it. */
  amount?: number | undefined;
  reason?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface Refund {
  id: string;
  holdId: string;
  accountId: string;
  amount: number;
  reason: string | null;
  metadata: Record<string, unknown> | null;
  transactionId: string;
  createdAt: string;
}

export type RefundRow = {
  id: string;
  hold_id: string;
  account_id: string;
  amount: number;
  reason: string | null;
  metadata: Record<string, unknown> | null;
  transaction_id: string;
  created_at: string;
};

export const REFUND_COLUMNS = sql.raw(
  "id, hold_id, account_id, amount, reason, metadata, transaction_id, created_at",
);

export function toRefund(row: RefundRow): Refund {
  return {
    id: row.id,
    holdId: row.hold_id,
    accountId: row.account_id,
    amount: row.amount,
    reason: row.reason,
    metadata: row.metadata,
    transactionId: row.transaction_id,
    createdAt: toIso(row.created_at),
  };
}

export interface RefundResult {
  refund: Refund;
  hold: Hold;
  account: Account;
}

type RefundedRow = {
  o_i: number;
  o_refusal: Extract<
    DomainErrorCode,
    "hold_not_found" | "hold_not_settled" | "refund_exceeds_settled" | "balance_limit_exceeded"
  > | null;
  o_refundable: number | null;
  o_refund: RefundRow | null;
  o_hold: HoldRow | null;
  o_account: AccountRow | null;
};

/** The refusal the statement decided, as a DomainError with its message. */
function refusal(input: RefundInput, row: RefundedRow): DomainError {
  const hold = row.o_hold && toHold(row.o_hold);
  switch (row.o_refusal) {
    case "hold_not_found":
      return new DomainError("hold_not_found", `hold ${input.holdId} does not exist`);
    case "hold_not_settled":
      return new DomainError(
        "hold_not_settled",
        `hold ${hold!.id} is ${hold!.status} and cannot be refunded`,
      );
    case "refund_exceeds_settled":
      return new DomainError(
        "refund_exceeds_settled",
        row.o_refundable === 0
          ? `hold ${hold!.id} is already refunded in full (${hold!.settledAmount} coins)`
          : `cannot refund ${input.amount} of hold ${hold!.id}: ${row.o_refundable} of its ${hold!.settledAmount} settled coins are still refundable`,
      );
    case "balance_limit_exceeded":
      return new DomainError(
        "balance_limit_exceeded",
        `refunding ${input.amount ?? row.o_refundable} would take account ${hold!.accountId} past 2^53 - 1 coins`,
      );
    case null:
      throw new Error(`holdfast_refund_holds answered neither a refund nor a refusal`);
  }
}

/**
 * Refunds many settled holds, fully or partly, in ONE statement, and answers, in input order,
 * each refund with the hold and the account after it, or the refusal it met (hold_not_found,
 * hold_not_settled, refund_exceeds_settled, balance_limit_exceeded). A refused refund writes
 * nothing, so it never fails its batch-mates.
 *
 * holdfast_refund_holds (src/db/sql/refund_holds.sql) decides each refund under its hold's lock,
 * against what the refunds before it left, and posts it through the posting core: two refunds
 * racing for a hold's last coins cannot both go through. The ids carry the hold's bucket, so the
 * statement writes one bucket per hold.
 */
export const refundHolds = withHoldEvents("hold.refunded", decideRefunds);

async function decideRefunds(
  db: Db,
  inputs: RefundInput[],
): Promise<(RefundResult | DomainError)[]> {
  const commands = inputs.map((input, i) => {
    // Postgres answers uuids in lower case; an id may be asked in upper case.
    const holdId = input.holdId.toLowerCase();
    const bucket = bucketOfId(holdId);
    return {
      i,
      bucket,
      hold_id: holdId,
      amount: input.amount ?? null,
      refund_id: newIdIn(bucket),
      transaction_id: newIdIn(bucket),
      reason: input.reason ?? null,
      metadata: input.metadata ?? null,
    };
  });
  const rows = await db.execute<RefundedRow>(
    sql`SELECT * FROM holdfast_refund_holds(${JSON.stringify(commands)}::jsonb) ORDER BY o_i`,
  );
  if (rows.length !== inputs.length) throw new Error("holdfast_refund_holds answered short");
  return rows.map((row, index) => {
    if (row.o_refusal !== null) return refusal(inputs[index]!, row);
    if (!row.o_refund || !row.o_hold || !row.o_account) {
      throw new Error("holdfast_refund_holds answered a refund without its rows");
    }
    return {
      refund: toRefund(row.o_refund),
      hold: toHold(row.o_hold),
      account: toAccount(row.o_account),
    };
  });
}

/** One refund: refundHolds of one, with its refusal thrown. */
export async function refundHold(db: Db, input: RefundInput): Promise<RefundResult> {
  const [result] = await refundHolds(db, [input]);
  if (result instanceof DomainError) throw result;
  return result!;
}
