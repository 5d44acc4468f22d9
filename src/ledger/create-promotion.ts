import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { DomainError } from "./errors.ts";
import {
  DEFAULT_MULTIPLIER,
  MAX_MULTIPLIER,
  MAX_REDEMPTIONS,
  MIN_MULTIPLIER,
  PROMOTION_CODE,
  PROMOTION_COLUMNS,
  type Promotion,
  type PromotionRow,
  toPromotion,
} from "./promotion.ts";

export interface CreatePromotionInput {
  code: string;
  /** An integer in [2, 10]; default 2. */
  multiplier?: number | undefined;
  /** At least 1; absent or null: unlimited. */
  maxRedemptions?: number | null | undefined;
  /** Absent or null: active from creation. */
  startsAt?: Date | string | null | undefined;
  /** Exclusive; absent or null: never ends. */
  endsAt?: Date | string | null | undefined;
}

/**
 * Timestamps go to the database at millisecond precision (the columns' precision), so that
 * the startsAt < endsAt checked here is the one the database's CHECK sees after rounding.
 */
function instant(value: Date | string | null | undefined, name: string): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new TypeError(`invalid ${name} ${String(value)}`);
  return date;
}

export async function createPromotion(db: Db, input: CreatePromotionInput): Promise<Promotion> {
  const multiplier = input.multiplier ?? DEFAULT_MULTIPLIER;
  if (!PROMOTION_CODE.test(input.code)) {
    throw new TypeError(`invalid promotion code ${JSON.stringify(input.code)}`);
  }
  if (!Number.isInteger(multiplier) || multiplier < MIN_MULTIPLIER || multiplier > MAX_MULTIPLIER) {
    throw new TypeError(`invalid multiplier ${multiplier}`);
  }
  const max = input.maxRedemptions ?? null;
  if (max !== null && (!Number.isInteger(max) || max < 1 || max > MAX_REDEMPTIONS)) {
    throw new TypeError(`invalid maxRedemptions ${max}`);
  }
  const startsAt = instant(input.startsAt, "startsAt");
  const endsAt = instant(input.endsAt, "endsAt");
  if (startsAt && endsAt && startsAt >= endsAt) {
    throw new TypeError("startsAt must be before endsAt");
  }
  const rows = await db.execute<PromotionRow>(sql`
    INSERT INTO promotions (code, multiplier, max_redemptions, starts_at, ends_at)
    VALUES (${input.code}, ${multiplier}, ${max}::int4,
            ${startsAt?.toISOString() ?? null}::timestamptz, ${endsAt?.toISOString() ?? null}::timestamptz)
    ON CONFLICT (code) DO NOTHING
    RETURNING ${PROMOTION_COLUMNS}`);
  const row = rows[0];
  if (!row) throw new DomainError("promotion_exists", `promotion ${input.code} already exists`);
  return toPromotion(row);
}
