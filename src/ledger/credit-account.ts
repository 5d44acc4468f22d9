import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { appendEvents } from "../events/append-events.ts";
import { type Account, toAccount } from "./account.ts";
import { DomainError } from "./errors.ts";
import { postOnAccount } from "./post-transaction.ts";

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
  // The HTTP schema checks this too; the domain must not post a negative "credit" either.
  if (!Number.isSafeInteger(input.amount) || input.amount < 1) {
    throw new TypeError(`invalid credit amount ${input.amount}`);
  }
  return atomically(db, async (tx) => {
    const { transactionId, outcome } = await postOnAccount(tx, {
      accountId: input.accountId,
      delta: input.amount,
      kind: "credit",
      counterparty: "@issuance",
      reason: input.reason,
      metadata: input.metadata,
    });
    if (outcome.refusal === "account_not_found") {
      throw new DomainError(outcome.refusal, `account ${input.accountId} does not exist`);
    }
    if (outcome.refusal) {
      throw new DomainError(
        "balance_limit_exceeded",
        `crediting ${input.amount} would take account ${input.accountId} past 2^53 - 1 coins`,
      );
    }
    const result = { transactionId, account: toAccount(outcome.account) };
    await appendEvents(tx, [
      { type: "account.credited", accountId: input.accountId, data: result },
    ]);
    return result;
  });
}
