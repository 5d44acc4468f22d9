import { sql } from "drizzle-orm";
import { toIso, toIsoOrNull } from "./rows.ts";

export const PROMOTION_CODE = /^[A-Z0-9_-]{3,32}$/;
export const MIN_MULTIPLIER = 2;
export const MAX_MULTIPLIER = 10;
export const DEFAULT_MULTIPLIER = 2;
/** `max_redemptions` is an int4 column. */
export const MAX_REDEMPTIONS = 2_147_483_647;

export interface Promotion {
  code: string;
  multiplier: number;
  maxRedemptions: number | null;
  redemptions: number;
  startsAt: string | null;
  endsAt: string | null;
  createdAt: string;
}

export interface RedeemInput {
  code: string;
  accountId: string;
}

export type PromotionRow = {
  code: string;
  multiplier: number;
  max_redemptions: number | null;
  starts_at: string | null;
  ends_at: string | null;
  created_at: string;
};

export const PROMOTION_COLUMNS = sql.raw(
  "code, multiplier, max_redemptions, starts_at, ends_at, created_at",
);

/** `redemptions`: the sum of the promotion's allotment rows (promotion_allotments). */
export function toPromotion(row: PromotionRow, redemptions: number): Promotion {
  return {
    code: row.code,
    multiplier: row.multiplier,
    maxRedemptions: row.max_redemptions,
    redemptions,
    startsAt: toIsoOrNull(row.starts_at),
    endsAt: toIsoOrNull(row.ends_at),
    createdAt: toIso(row.created_at),
  };
}
