import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { type Account, getAccount, toAccount } from "./account.ts";
import { DomainError } from "./errors.ts";
import { bucketOf, newIdIn, USER_ACCOUNT_ID } from "./ids.ts";
import { post } from "./post-transaction.ts";

export interface CreditInput {
  accountId: string;
  amount: number;
  reason?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface CreditResult {
  transactionId: string;
  account: Account;
}

/** Issues coins: one balanced transaction from `@issuance` to the user account. */
export async function creditAccount(db: Db, input: CreditInput): Promise<CreditResult> {
  // The HTTP schema checks these too; the domain must not post a negative "credit" either.
  if (!Number.isSafeInteger(input.amount) || input.amount < 1) {
    throw new TypeError(`invalid credit amount ${input.amount}`);
  }
  if (!USER_ACCOUNT_ID.test(input.accountId)) {
    throw new TypeError(`invalid user account id ${JSON.stringify(input.accountId)}`);
  }
  const bucket = bucketOf(input.accountId);
  const transactionId = newIdIn(bucket);
  const row = await post(
    db,
    sql`src AS (SELECT ${input.accountId}::text AS account_id, ${input.amount}::int8 AS delta,
                       0::int8 AS release_held, NULL::uuid AS hold_id)`,
    {
      bucket,
      transactionId,
      kind: "credit",
      counterparty: "@issuance",
      reason: input.reason,
      metadata: input.metadata,
    },
  );
  if (!row) {
    // Nothing was written; say why. getAccount throws account_not_found for a missing account.
    await getAccount(db, input.accountId);
    throw new DomainError(
      "balance_limit_exceeded",
      `crediting ${input.amount} would take account ${input.accountId} past 2^53 - 1 coins`,
    );
  }
  return { transactionId, account: toAccount(row) };
}
