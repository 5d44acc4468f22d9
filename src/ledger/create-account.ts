import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { appendEvents } from "../events/append-events.ts";
import { type Account, type AccountRow, toAccount } from "./account.ts";
import { DomainError } from "./errors.ts";
import { bucketOf, USER_ACCOUNT_ID } from "./ids.ts";
import { jsonParam } from "./rows.ts";

export interface CreateAccountInput {
  id: string;
  metadata?: Record<string, unknown> | undefined;
}

export async function createAccount(db: Db, input: CreateAccountInput): Promise<Account> {
  if (!USER_ACCOUNT_ID.test(input.id)) {
    throw new TypeError(`invalid user account id ${JSON.stringify(input.id)}`);
  }
  return atomically(db, async (tx) => {
    const rows = await tx.execute<AccountRow>(sql`
      INSERT INTO accounts (bucket, id, kind, metadata)
      VALUES (${bucketOf(input.id)}, ${input.id}, 'user', ${jsonParam(input.metadata)}::jsonb)
      ON CONFLICT (bucket, id) DO NOTHING
      RETURNING id, settled, held, metadata, created_at`);
    const row = rows[0];
    if (!row) throw new DomainError("account_exists", `account ${input.id} already exists`);
    const account = toAccount(row);
    await appendEvents(tx, [{ type: "account.created", accountId: account.id, data: account }]);
    return account;
  });
}
