import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { MAX_AMOUNT_SQL } from "../db/schema/index.ts";
import type { AccountRow } from "./account.ts";
import type { DomainErrorCode } from "./errors.ts";
import type { SystemAccountId } from "./ids.ts";
import { jsonParam } from "./rows.ts";

export type EntryKind = "credit" | "purchase" | "promotion" | "adjustment";

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

/**
 * One statement that posts a balanced two-entry transaction between a user account and a
 * system account. `source` must define a CTE named `src` with one row of
 * (account_id text, delta int8, release_held int8, hold_id uuid): `delta` is added to the
 * user's settled balance, `release_held` is taken off its held balance.
 *
 * The decision (does the balance stay within [held, 2^53 − 1]?) is the WHERE of the account
 * UPDATE, so it is taken under the row lock, at the position the entry gets in the
 * account's sequence. No row comes back when it fails, and then nothing was written.
 *
 * The system side adds to the system account's row in the same bucket, after the user row:
 * a transaction that posts several times locks its user accounts first (the write path does),
 * then system rows in bucket order, so two of them cannot lock system rows in opposite orders.
 */
export function postingStatement(source: SQL, posting: Posting): SQL {
  const metadata = jsonParam(posting.metadata);
  const bucket = sql`${posting.bucket}::int`;
  return sql`
    WITH ${source},
    acct AS (
      UPDATE accounts a
         SET settled = a.settled + src.delta,
             held = a.held - src.release_held,
             last_seq = a.last_seq + 1
        FROM src
       WHERE a.bucket = ${bucket} AND a.id = src.account_id AND a.kind = 'user'
         AND a.settled + src.delta >= a.held - src.release_held
         AND a.settled + src.delta <= ${MAX_AMOUNT_SQL}
      RETURNING a.id, a.settled, a.held, a.last_seq, a.metadata, a.created_at, src.delta, src.hold_id
    ),
    txn AS (
      INSERT INTO ledger_transactions (bucket, id, kind, reason, metadata)
      SELECT ${bucket}, ${posting.transactionId}, ${posting.kind}, ${posting.reason ?? null}, ${metadata}::jsonb
        FROM acct
      RETURNING id
    ),
    ent AS (
      INSERT INTO entries (bucket, transaction_id, leg, account_id, seq, amount, settled_after, hold_id, kind, metadata)
      SELECT ${bucket}, txn.id, 0, acct.id, acct.last_seq, acct.delta, acct.settled, acct.hold_id, ${posting.kind}, ${metadata}::jsonb
        FROM acct, txn
      UNION ALL
      SELECT ${bucket}, txn.id, 1, ${posting.counterparty}, NULL, -acct.delta, NULL, acct.hold_id, ${posting.kind}, ${metadata}::jsonb
        FROM acct, txn
    ),
    sys AS (
      UPDATE accounts s
         SET settled = s.settled - acct.delta
        FROM acct
       WHERE s.bucket = ${bucket} AND s.id = ${posting.counterparty}
    )
    SELECT acct.id, acct.settled, acct.held, acct.last_seq, acct.metadata, acct.created_at,
           txn.id AS transaction_id
      FROM acct, txn`;
}

export async function post(db: Db, source: SQL, posting: Posting): Promise<PostedRow | undefined> {
  const rows = await db.execute<PostedRow>(postingStatement(source, posting));
  return rows[0];
}

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
