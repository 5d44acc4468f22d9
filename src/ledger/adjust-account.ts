import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { MAX_AMOUNT } from "../db/schema/index.ts";
import { appendEvents } from "../events/append-events.ts";
import { type Account, toAccount } from "./account.ts";
import { DomainError } from "./errors.ts";
import { postOnAccount } from "./post-transaction.ts";

export interface AdjustInput {
  accountId: string;
  /** Signed and non-zero: + gives coins, − takes them back. */
  amount: number;
  reason: string;
  metadata?: Record<string, unknown> | undefined;
}

export interface Adjustment {
  transactionId: string;
  accountId: string;
  amount: number;
  reason: string;
  metadata: Record<string, unknown> | null;
}

export interface AdjustResult {
  adjustment: Adjustment;
  account: Account;
}

/**
 * An admin correction: one balanced `adjustment` transaction between the user account and
 * `@adjustments`, decided by the posting core at the account's next position. A negative one
 * that would take available below 0 is refused (insufficient_funds) and writes nothing.
 */
export async function adjustAccount(db: Db, input: AdjustInput): Promise<AdjustResult> {
  // The HTTP schema checks this too; the domain must not post a zero or inexact amount either.
  if (!Number.isSafeInteger(input.amount) || input.amount === 0) {
    throw new TypeError(`invalid adjustment amount ${input.amount}`);
  }
  return atomically(db, async (tx) => {
    const { transactionId, outcome } = await postOnAccount(tx, {
      accountId: input.accountId,
      delta: input.amount,
      kind: "adjustment",
      counterparty: "@adjustments",
      reason: input.reason,
      metadata: input.metadata,
    });
    switch (outcome.refusal) {
      case "account_not_found":
        throw new DomainError(outcome.refusal, `account ${input.accountId} does not exist`);
      case "insufficient_funds":
        throw new DomainError(
          outcome.refusal,
          `adjusting account ${input.accountId} by ${input.amount} would take its available balance below 0`,
        );
      case "balance_limit_exceeded":
        throw new DomainError(
          outcome.refusal,
          `adjusting account ${input.accountId} by ${input.amount} would take it past ${MAX_AMOUNT} coins`,
        );
    }
    const result = {
      adjustment: {
        transactionId,
        accountId: input.accountId,
        amount: input.amount,
        reason: input.reason,
        metadata: input.metadata ?? null,
      },
      account: toAccount(outcome.account),
    };
    await appendEvents(tx, [
      { type: "account.adjusted", accountId: input.accountId, data: result },
    ]);
    return result;
  });
}
