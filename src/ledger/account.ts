import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "./errors.ts";
import { bucketOf, isSystemAccountId } from "./ids.ts";
import { toIso } from "./rows.ts";

export type Balance = number | bigint;

export interface Account {
  id: string;
  settled: Balance;
  held: Balance;
  available: Balance;
  metadata: Record<string, unknown> | null;
  createdAt: string;
}

export type AccountRow = {
  id: string;
  settled: Balance;
  held: Balance;
  metadata: Record<string, unknown> | null;
  created_at: string | Date;
};

export function toAccount(row: AccountRow): Account {
  const settled = row.settled;
  const held = row.held;
  const available =
    typeof settled === "number" && typeof held === "number"
      ? settled - held
      : BigInt(settled) - BigInt(held);
  return {
    id: row.id,
    settled,
    held,
    available,
    metadata: row.metadata ?? null,
    createdAt: toIso(row.created_at),
  };
}

/**
 * O(1) in the length of the history: a user account is one row; a system account is the sum
 * of its rows, one per bucket (on Citus, a read of every shard).
 */
export async function getAccount(db: Db, id: string): Promise<Account> {
  const rows = isSystemAccountId(id)
    ? await db.execute<AccountRow>(sql`
        SELECT id, sum(settled)::int8 AS settled, 0::int8 AS held, NULL::jsonb AS metadata,
               min(created_at) AS created_at
          FROM accounts
         WHERE id = ${id} AND kind = 'system'
         GROUP BY id`)
    : await db.execute<AccountRow>(sql`
        SELECT id, settled, held, metadata, created_at FROM accounts
         WHERE bucket = ${bucketOf(id)} AND id = ${id} AND kind = 'user'`);
  const row = rows[0];
  if (!row) throw new DomainError("account_not_found", `account ${id} does not exist`);
  return toAccount(row);
}
