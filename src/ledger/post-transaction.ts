import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { EntryKind } from "../db/schema/index.ts";
import type { AccountRow } from "./account.ts";
import type { DomainErrorCode } from "./errors.ts";
import { bucketOf, newIdIn, type SystemAccountId, USER_ACCOUNT_ID } from "./ids.ts";

export interface Posting {
  /** The user account's bucket, which `transactionId` carries. */
  bucket: number;
  transactionId: string;
  kind: EntryKind;
  counterparty: SystemAccountId;
  reason?: string | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
}

export type PostedRow = AccountRow & { transaction_id: string; last_seq: number };

export interface PostInput {
  accountId: string;
  /** Added to the user account's settled balance, taken from the counterparty's. */
  delta: number;
  posting: Posting;
}

type PostRow = {
  o_i: number;
  o_refusal: Extract<
    DomainErrorCode,
    "account_not_found" | "insufficient_funds" | "balance_limit_exceeded"
  > | null;
  o_settled: number;
  o_held: number;
  o_last_seq: number;
  o_metadata: Record<string, unknown> | null;
  o_created_at: string;
};

export type PostOutcome =
  | { refusal: null; account: PostedRow }
  | { refusal: NonNullable<PostRow["o_refusal"]> };

/**
 * Posts many transactions through holdfast_post (src/db/sql/post.sql), the posting core, and
 * answers, in input order, each one's account after it or the refusal the core decided.
 */
export async function postMany(db: Db, inputs: PostInput[]): Promise<PostOutcome[]> {
  const postings = inputs.map(({ accountId, delta, posting }, i) => ({
    i,
    bucket: posting.bucket,
    transaction_id: posting.transactionId,
    kind: posting.kind,
    account_id: accountId,
    counterparty: posting.counterparty,
    delta,
    release_held: 0,
    hold_id: null,
    reason: posting.reason ?? null,
    metadata: posting.metadata ?? null,
  }));
  const rows = await db.execute<PostRow>(
    sql`SELECT * FROM holdfast_post(${JSON.stringify(postings)}::jsonb) ORDER BY o_i`,
  );
  if (rows.length !== inputs.length) throw new Error("holdfast_post answered short");
  return rows.map((row, i) =>
    row.o_refusal
      ? { refusal: row.o_refusal }
      : {
          refusal: null,
          account: {
            id: inputs[i]!.accountId,
            settled: row.o_settled,
            held: row.o_held,
            last_seq: row.o_last_seq,
            metadata: row.o_metadata,
            created_at: row.o_created_at,
            transaction_id: inputs[i]!.posting.transactionId,
          },
        },
  );
}

/** One posting between a user account and a system account, in a new ledger transaction. */
export async function postOnAccount(
  db: Db,
  input: {
    accountId: string;
    delta: number;
    kind: EntryKind;
    counterparty: SystemAccountId;
    reason?: string | undefined;
    metadata?: Record<string, unknown> | undefined;
  },
): Promise<{ transactionId: string; outcome: PostOutcome }> {
  if (!USER_ACCOUNT_ID.test(input.accountId)) {
    throw new TypeError(`invalid user account id ${JSON.stringify(input.accountId)}`);
  }
  const bucket = bucketOf(input.accountId);
  const transactionId = newIdIn(bucket);
  const { accountId, delta, kind, counterparty, reason, metadata } = input;
  const [outcome] = await postMany(db, [
    { accountId, delta, posting: { bucket, transactionId, kind, counterparty, reason, metadata } },
  ]);
  return { transactionId, outcome: outcome! };
}
