import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import type { Shards } from "../db/shards.ts";
import { appendEvents } from "../events/append-events.ts";
import { type Account, toAccount } from "./account.ts";
import { DomainError, type DomainErrorCode } from "./errors.ts";
import { bucketOf, newIdIn } from "./ids.ts";
import type { RedeemInput } from "./promotion.ts";
import { toIso, toIsoOrNull } from "./rows.ts";

export interface Redemption {
  code: string;
  accountId: string;
  /**
   * The settled balance the multiplier was applied to: the account's settled balance read
   * under its row lock, at the redemption's position in the account's sequence (pending holds
   * neither reduce it nor are touched). The contract's "settled balance doubled" names this
   * balance, the one that gets doubled; after the redemption settled = basis × multiplier.
   */
  basis: number;
  /** basis × (multiplier − 1), credited from `@promotions`. */
  credited: number;
  /** The promotion's ledger transaction; null when basis was 0 (nothing to post). */
  transactionId: string | null;
  createdAt: string;
}

export interface RedeemResult {
  redemption: Redemption;
  account: Account;
}

type RedeemRow = {
  o_refusal: Extract<
    DomainErrorCode,
    | "promotion_not_found"
    | "account_not_found"
    | "promotion_already_redeemed"
    | "promotion_inactive"
    | "balance_limit_exceeded"
  > | null;
  o_inactive: "not_started" | "ended" | "exhausted" | null;
  o_starts_at: string | null;
  o_ends_at: string | null;
  o_max_redemptions: number | null;
  o_basis: number;
  o_credited: number;
  o_transaction_id: string | null;
  o_created_at: string;
  o_settled: number;
  o_held: number;
  o_metadata: Record<string, unknown> | null;
  o_account_created_at: string;
};

/** The message of the refusal holdfast_redeem decided. */
function refusal(input: RedeemInput, row: RedeemRow): DomainError {
  const { code, accountId } = input;
  switch (row.o_refusal) {
    case "promotion_not_found":
      return new DomainError(row.o_refusal, `promotion ${code} does not exist`);
    case "account_not_found":
      return new DomainError(row.o_refusal, `account ${accountId} does not exist`);
    case "promotion_already_redeemed":
      return new DomainError(
        row.o_refusal,
        `account ${accountId} has already redeemed promotion ${code}`,
      );
    case "balance_limit_exceeded":
      return new DomainError(
        row.o_refusal,
        `redeeming ${code} would take account ${accountId} past 2^53 - 1 coins`,
      );
    default:
      return new DomainError(
        "promotion_inactive",
        row.o_inactive === "not_started"
          ? `promotion ${code} starts at ${toIsoOrNull(row.o_starts_at)}`
          : row.o_inactive === "ended"
            ? `promotion ${code} ended at ${toIsoOrNull(row.o_ends_at)}`
            : `promotion ${code} has reached its ${row.o_max_redemptions} redemption(s)`,
      );
  }
}

/**
 * Redeems a promotion on an account in one call of holdfast_redeem (src/db/sql/redeem.sql),
 * which decides under the promotion's and the account's row locks and posts the credit through
 * the posting core: the credit is exactly what a serial order would give at the redemption's
 * position in the account's sequence. It counts the redemption on the account's shard
 * (`shards.home`). A refusal writes nothing.
 */
export function redeemPromotion(
  db: Db,
  input: RedeemInput,
  shards: Pick<Shards, "home">,
): Promise<RedeemResult> {
  return atomically(db, async (tx) => {
    const result = await redeem(tx, input, shards.home(bucketOf(input.accountId)));
    await appendEvents(tx, [
      { type: "promotion.redeemed", accountId: input.accountId, data: result },
    ]);
    return result;
  });
}

async function redeem(db: Db, input: RedeemInput, home: number): Promise<RedeemResult> {
  const bucket = bucketOf(input.accountId);
  const [row] = await db.execute<RedeemRow>(sql`
    SELECT * FROM holdfast_redeem(${input.code}, ${bucket}::int, ${home}::int,
                                  ${input.accountId}, ${newIdIn(bucket)}::uuid)`);
  if (!row) throw new Error("holdfast_redeem answered no row");
  if (row.o_refusal) throw refusal(input, row);
  return {
    redemption: {
      code: input.code,
      accountId: input.accountId,
      basis: row.o_basis,
      credited: row.o_credited,
      transactionId: row.o_transaction_id,
      createdAt: toIso(row.o_created_at),
    },
    account: toAccount({
      id: input.accountId,
      settled: row.o_settled,
      held: row.o_held,
      metadata: row.o_metadata,
      created_at: row.o_account_created_at,
    }),
  };
}
