import { sql } from "drizzle-orm";
import {
  check,
  foreignKey,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";
import { bucket } from "./bucket.ts";

export const promotions = pgTable(
  "promotions",
  {
    code: text("code").primaryKey(),
    multiplier: integer("multiplier").notNull(),
    maxRedemptions: integer("max_redemptions"),
    startsAt: timestamp("starts_at", { withTimezone: true, precision: 3 }),
    endsAt: timestamp("ends_at", { withTimezone: true, precision: 3 }),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    check("promotions_code_format", sql`${t.code} ~ '^[A-Z0-9_-]{3,32}$'`),
    check("promotions_multiplier_range", sql`${t.multiplier} BETWEEN 2 AND 10`),
    check(
      "promotions_redemption_cap",
      sql`${t.maxRedemptions} IS NULL OR ${t.maxRedemptions} >= 1`,
    ),
    check(
      "promotions_window",
      sql`${t.startsAt} IS NULL OR ${t.endsAt} IS NULL OR ${t.startsAt} < ${t.endsAt}`,
    ),
  ],
);

/**
 * A promotion's redemptions counted shard by shard (src/db/sql/count_redemption.sql): one row
 * per shard, in the shard's home bucket (Shards.home), so that a redemption counts itself on
 * the shard it writes on. A capped promotion's cap is split between its rows (`allotted`,
 * summing to max_redemptions); a row that has used its allotment takes more from another row.
 * Uncapped: `allotted` is null.
 */
export const promotionAllotments = pgTable(
  "promotion_allotments",
  {
    bucket: bucket(),
    promotionCode: text("promotion_code").notNull(),
    allotted: integer("allotted"),
    redeemed: integer("redeemed").notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.promotionCode] }),
    foreignKey({ columns: [t.promotionCode], foreignColumns: [promotions.code] }),
    check(
      "promotion_allotments_within",
      sql`${t.redeemed} >= 0 AND (${t.allotted} IS NULL OR ${t.redeemed} <= ${t.allotted})`,
    ),
  ],
);
