import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { creditAccount } from "./credit-account.ts";

export const DEMO_ACCOUNTS = [
  { id: "alice", coins: 50 },
  { id: "bob", coins: 500 },
] as const;

/**
 * Demo data. Each account is created and funded in one transaction, and only when it did not
 * exist, so running the seed again (or twice at once) changes nothing.
 */
export async function seedDemo(db: Db): Promise<string[]> {
  const created: string[] = [];
  for (const { id, coins } of DEMO_ACCOUNTS) {
    const added = await db.transaction(async (tx) => {
      const rows = await tx.execute(sql`
        INSERT INTO accounts (id, kind, metadata) VALUES (${id}, 'user', '{"demo":true}'::jsonb)
        ON CONFLICT (id) DO NOTHING RETURNING id`);
      if (rows.length === 0) return false;
      await creditAccount(tx, { accountId: id, amount: coins, reason: "demo seed" });
      return true;
    });
    if (added) created.push(id);
  }
  return created;
}
