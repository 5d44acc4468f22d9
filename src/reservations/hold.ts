import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import type { HoldStatus } from "../db/schema/index.ts";
import { DomainError } from "../ledger/errors.ts";
import { bucketOfId } from "../ledger/ids.ts";
import { intArray, toIso, toIsoOrNull, uuidArray } from "../ledger/rows.ts";

export interface Hold {
  id: string;
  accountId: string;
  amount: number;
  status: HoldStatus;
  settledAmount: number | null;
  /** The sum of its refunds: 0 until refunded, at most settledAmount. */
  refundedAmount: number;
  orderId: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  reason: string | null;
  expiresAt: string;
  createdAt: string;
  resolvedAt: string | null;
}

export type HoldRow = {
  id: string;
  account_id: string;
  amount: number;
  status: HoldStatus;
  settled_amount: number | null;
  refunded_amount: number;
  order_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  reason: string | null;
  expires_at: string;
  created_at: string;
  resolved_at: string | null;
};

export const HOLD_COLUMNS = sql.raw(
  "id, account_id, amount, status, settled_amount, refunded_amount, order_id, description, metadata, reason, expires_at, created_at, resolved_at",
);

export function toHold(row: HoldRow): Hold {
  return {
    id: row.id,
    accountId: row.account_id,
    amount: row.amount,
    status: row.status,
    settledAmount: row.settled_amount,
    refundedAmount: row.refunded_amount,
    orderId: row.order_id,
    description: row.description,
    metadata: row.metadata,
    reason: row.reason,
    expiresAt: toIso(row.expires_at),
    createdAt: toIso(row.created_at),
    resolvedAt: toIsoOrNull(row.resolved_at),
  };
}

export async function findHold(db: Db, id: string): Promise<Hold | undefined> {
  const rows = await db.execute<HoldRow>(
    sql`SELECT ${HOLD_COLUMNS} FROM holds WHERE bucket = ${bucketOfId(id)} AND id = ${id}`,
  );
  return rows[0] && toHold(rows[0]);
}

/** Many holds by id in one query, in the order asked; undefined for an id with no hold. */
export async function findHolds(db: Db, asked: string[]): Promise<(Hold | undefined)[]> {
  // Postgres answers uuids in lower case; an id may be asked in upper case.
  const ids = asked.map((id) => id.toLowerCase());
  const rows = await db.execute<HoldRow>(
    sql`SELECT ${HOLD_COLUMNS} FROM holds
         WHERE bucket = ANY (${intArray([...new Set(ids.map(bucketOfId))])}) AND id = ANY (${uuidArray(ids)})`,
  );
  const byId = new Map(rows.map((row) => [row.id, toHold(row)]));
  return ids.map((id) => byId.get(id));
}

export async function getHold(db: Db, id: string): Promise<Hold> {
  const hold = await findHold(db, id);
  if (!hold) throw new DomainError("hold_not_found", `hold ${id} does not exist`);
  return hold;
}

/** The error for a state change that found the hold no longer pending. */
export function notPending(hold: Hold, verb: string): DomainError {
  return new DomainError(
    "hold_not_pending",
    `hold ${hold.id} is ${hold.status} and cannot be ${verb}`,
  );
}
