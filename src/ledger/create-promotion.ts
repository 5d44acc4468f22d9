import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { oneShardAtATime } from "../db/distribute.ts";
import type { Shards } from "../db/shards.ts";
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

/**
 * The cap, split between the shards: `homes[i]` gets its i-th share, the first ones one more
 * when it does not divide evenly. Null (uncapped): a row per shard to count in.
 */
export function splitCap(max: number | null, homes: number[]): number[] | null[] {
  if (max === null) return homes.map(() => null);
  return homes.map((_, i) => Math.floor(max / homes.length) + (i < max % homes.length ? 1 : 0));
}

/**
 * Inserts the promotion and its allotment rows, one in the home bucket of each shard with its
 * share of the cap (splitCap), in one transaction: on Citus a write on every node, as any
 * change of the reference table is.
 */
export async function createPromotion(
  db: Db,
  input: CreatePromotionInput,
  shards: Pick<Shards, "homes">,
): Promise<Promotion> {
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
  return atomically(db, async (tx) => {
    await oneShardAtATime(tx);
    const rows = await tx.execute<PromotionRow>(sql`
      INSERT INTO promotions (code, multiplier, max_redemptions, starts_at, ends_at)
      VALUES (${input.code}, ${multiplier}, ${max}::int4,
              ${startsAt?.toISOString() ?? null}::timestamptz, ${endsAt?.toISOString() ?? null}::timestamptz)
      ON CONFLICT (code) DO NOTHING
      RETURNING ${PROMOTION_COLUMNS}`);
    const row = rows[0];
    if (!row) throw new DomainError("promotion_exists", `promotion ${input.code} already exists`);
    const shares = splitCap(max, shards.homes);
    await tx.execute(sql`
      INSERT INTO promotion_allotments (bucket, promotion_code, allotted)
      VALUES ${sql.join(
        shards.homes.map((home, i) => sql`(${home}::int, ${input.code}, ${shares[i]}::int4)`),
        sql`, `,
      )}`);
    return toPromotion(row, 0);
  });
}
