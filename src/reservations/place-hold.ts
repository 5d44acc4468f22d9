import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { type Account, type AccountRow, getAccount, toAccount } from "../ledger/account.ts";
import { DomainError } from "../ledger/errors.ts";
import { newId } from "../ledger/ids.ts";
import { jsonParam } from "../ledger/rows.ts";
import { holdsPlaced } from "../metrics.ts";
import { HOLD_COLUMNS, type Hold, type HoldRow, toHold } from "./hold.ts";

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

type PlacedRow = HoldRow & {
  a_id: string;
  a_settled: number;
  a_held: number;
  a_metadata: AccountRow["metadata"];
  a_created_at: string;
};

/**
 * Reserves coins in one statement: the account UPDATE's WHERE is the decision
 * (available ≥ amount), taken under the row lock, and the hold is inserted only if it passed.
 * Two purchases racing for the last coins queue on the row lock; the second re-checks against
 * the first's result, so they cannot both succeed, whatever process they come from.
 */
export async function placeHold(db: Db, input: PlaceHoldInput): Promise<PlacedHold> {
  const seconds = input.expiresInSeconds ?? DEFAULT_HOLD_SECONDS;
  const rows = await db.execute<PlacedRow>(sql`
    WITH a AS (
      UPDATE accounts SET held = held + ${input.amount}
       WHERE id = ${input.accountId} AND kind = 'user' AND settled - held >= ${input.amount}
      RETURNING id, settled, held, metadata, created_at
    ), h AS (
      INSERT INTO holds (id, account_id, amount, order_id, description, metadata, expires_at)
      SELECT ${newId()}, a.id, ${input.amount}, ${input.orderId ?? null}, ${input.description ?? null},
             ${jsonParam(input.metadata)}::jsonb, now() + make_interval(secs => ${seconds})
        FROM a
      RETURNING ${HOLD_COLUMNS}
    )
    SELECT h.*, a.id AS a_id, a.settled AS a_settled, a.held AS a_held,
           a.metadata AS a_metadata, a.created_at AS a_created_at
      FROM h, a`);
  const row = rows[0];
  if (!row) {
    const account = await getAccount(db, input.accountId);
    throw new DomainError(
      "insufficient_funds",
      `account ${input.accountId} has ${account.available} coins available, ${input.amount} needed`,
    );
  }
  holdsPlaced.inc();
  return {
    hold: toHold(row),
    account: toAccount({
      id: row.a_id,
      settled: row.a_settled,
      held: row.a_held,
      metadata: row.a_metadata,
      created_at: row.a_created_at,
    }),
  };
}
