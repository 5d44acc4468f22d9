import type { Db } from "../db/client.ts";
import { shardsOf } from "../db/shards.ts";
import { createAccount } from "./create-account.ts";
import { createPromotion } from "./create-promotion.ts";
import { creditAccount } from "./credit-account.ts";
import { isDomainError } from "./errors.ts";

export const DEMO_ACCOUNTS = [
  { id: "alice", coins: 50 },
  { id: "bob", coins: 500 },
] as const;

export const DEMO_PROMOTION = { code: "DOUBLE", multiplier: 2 } as const;

/**
 * Demo data. Each account is created and funded in one transaction, and only when it did not
 * exist, and the promotion is inserted only when its code is free, so running the seed again
 * (or twice at once) changes nothing. Returns what it created.
 */
export async function seedDemo(db: Db): Promise<string[]> {
  const created: string[] = [];
  for (const { id, coins } of DEMO_ACCOUNTS) {
    const added = await db.transaction(async (tx) => {
      try {
        await createAccount(tx, { id, metadata: { demo: true } });
      } catch (error) {
        if (isDomainError(error) && error.code === "account_exists") return false;
        throw error;
      }
      await creditAccount(tx, { accountId: id, amount: coins, reason: "demo seed" });
      return true;
    });
    if (added) created.push(id);
  }
  try {
    await createPromotion(db, DEMO_PROMOTION, await shardsOf(db));
    created.push(DEMO_PROMOTION.code);
  } catch (error) {
    if (!isDomainError(error) || error.code !== "promotion_exists") throw error;
  }
  return created;
}
