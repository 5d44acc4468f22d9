import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "./errors.ts";
import { PROMOTION_COLUMNS, type Promotion, type PromotionRow, toPromotion } from "./promotion.ts";

export async function getPromotion(db: Db, code: string): Promise<Promotion> {
  const rows = await db.execute<PromotionRow>(
    sql`SELECT ${PROMOTION_COLUMNS} FROM promotions WHERE code = ${code}`,
  );
  const row = rows[0];
  if (!row) throw new DomainError("promotion_not_found", `promotion ${code} does not exist`);
  return toPromotion(row);
}
