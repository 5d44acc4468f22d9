import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { MAX_AMOUNT_SQL } from "../db/schema/index.ts";
import type { AccountRow } from "./account.ts";
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
