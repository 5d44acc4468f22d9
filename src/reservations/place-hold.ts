import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { withHoldEvents } from "../events/append-events.ts";
import { type Account, toAccount } from "../ledger/account.ts";
import { DomainError, type DomainErrorCode } from "../ledger/errors.ts";
import { bucketOf, newIdIn } from "../ledger/ids.ts";
import { toIso } from "../ledger/rows.ts";
import { count, holdsPlaced } from "../metrics.ts";
import type { Hold } from "./hold.ts";

export const DEFAULT_HOLD_SECONDS = 900;
export const MAX_HOLD_SECONDS = 604_800;

export interface PlaceHoldInput {
  accountId: string;
  amount: number;
  orderId?: string | undefined;
  description?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
  expiresInSeconds?: number | undefined;
}

export interface PlacedHold {
  hold: Hold;
  account: Account;
}

type PlacedRow = {
  o_i: number;
  o_refusal: Extract<DomainErrorCode, "account_not_found" | "insufficient_funds"> | null;
  o_free_before: number | null;
  o_settled: number;
  o_held_after: number;
  o_account_metadata: Record<string, unknown> | null;
  o_account_created_at: string;
  o_expires_at: string;
  o_created_at: string;
  o_hold_metadata: Record<string, unknown> | null;
};

/**
 * Reserves coins for many purchases in ONE statement, and answers, in input order, each
 * purchase's hold or the refusal it met (insufficient_funds, account_not_found).
 *
 * holdfast_place_holds (src/db/sql/place_holds.sql) takes the decisions under the accounts' row locks: each
 * account's purchases are decided one after the other, in input order, as if applied
 * serially, and each answer shows the account as its purchase left it. Two requests racing
 * for the last coins, in one batch or in two processes, cannot both succeed: the second is
 * decided after the first, on the first's result.
 */
export const placeHolds = withHoldEvents("hold.placed", decidePlacements);

async function decidePlacements(
  db: Db,
  inputs: PlaceHoldInput[],
): Promise<(PlacedHold | DomainError)[]> {
  const commands = inputs.map((input, i) => {
    const bucket = bucketOf(input.accountId);
    return {
      i,
      id: newIdIn(bucket),
      bucket,
      account_id: input.accountId,
      amount: input.amount,
      order_id: input.orderId ?? null,
      description: input.description ?? null,
      metadata: input.metadata ?? null,
      seconds: input.expiresInSeconds ?? DEFAULT_HOLD_SECONDS,
    };
  });
  const rows = await db.execute<PlacedRow>(
    sql`SELECT * FROM holdfast_place_holds(${JSON.stringify(commands)}::jsonb) ORDER BY o_i`,
  );
  return rows.map((row, index): PlacedHold | DomainError => {
    const input = inputs[index]!;
    const command = commands[index]!;
    if (row.o_refusal === "account_not_found") {
      return new DomainError(row.o_refusal, `account ${input.accountId} does not exist`);
    }
    if (row.o_refusal === "insufficient_funds") {
      return new DomainError(
        row.o_refusal,
        `account ${input.accountId} has ${row.o_free_before} coins available, ${input.amount} needed`,
      );
    }
    count(db, holdsPlaced);
    return {
      hold: {
        id: command.id,
        accountId: input.accountId,
        amount: input.amount,
        status: "pending",
        settledAmount: null,
        refundedAmount: 0,
        orderId: command.order_id,
        description: command.description,
        metadata: row.o_hold_metadata,
        reason: null,
        expiresAt: toIso(row.o_expires_at),
        createdAt: toIso(row.o_created_at),
        resolvedAt: null,
      },
      account: toAccount({
        id: input.accountId,
        settled: row.o_settled,
        held: row.o_held_after,
        metadata: row.o_account_metadata,
        created_at: row.o_account_created_at,
      }),
    };
  });
}

/** One purchase: placeHolds of one, with its refusal thrown. */
export async function placeHold(db: Db, input: PlaceHoldInput): Promise<PlacedHold> {
  const [result] = await placeHolds(db, [input]);
  if (result instanceof DomainError) throw result;
  return result!;
}
