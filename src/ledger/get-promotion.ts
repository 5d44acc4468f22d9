import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "./errors.ts";
import { PROMOTION_COLUMNS, type Promotion, type PromotionRow, toPromotion } from "./promotion.ts";

/**
 * The promotion and its redemptions so far: the sum of its allotment rows, one per shard (on
 * Citus a read of every shard).
 */
export async function getPromotion(db: Db, code: string): Promise<Promotion> {
  const rows = await db.execute<PromotionRow>(
    sql`SELECT ${PROMOTION_COLUMNS} FROM promotions WHERE code = ${code}`,
  );
  const row = rows[0];
  if (!row) throw new DomainError("promotion_not_found", `promotion ${code} does not exist`);
  const [count] = await db.execute<{ redeemed: number }>(sql`
    SELECT COALESCE(sum(redeemed), 0)::int AS redeemed
      FROM promotion_allotments WHERE promotion_code = ${code}`);
  if (!count) throw new Error("the redemption count of a promotion answered no row");
  return toPromotion(row, count.redeemed);
}
