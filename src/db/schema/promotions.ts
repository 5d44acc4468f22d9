import { sql } from "drizzle-orm";
import { check, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";

export const promotions = pgTable(
  "promotions",
  {
    code: text("code").primaryKey(),
    multiplier: integer("multiplier").notNull(),
    maxRedemptions: integer("max_redemptions"),
    redemptions: integer("redemptions").notNull().default(0),
    startsAt: timestamp("starts_at", { withTimezone: true, precision: 3 }),
    endsAt: timestamp("ends_at", { withTimezone: true, precision: 3 }),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    check("promotions_code_format", sql`${t.code} ~ '^[A-Z0-9_-]{3,32}$'`),
    check("promotions_multiplier_range", sql`${t.multiplier} BETWEEN 2 AND 10`),
    check(
      "promotions_redemption_cap",
      sql`${t.maxRedemptions} IS NULL OR (${t.maxRedemptions} >= 1 AND ${t.redemptions} <= ${t.maxRedemptions})`,
    ),
    check(
      "promotions_window",
      sql`${t.startsAt} IS NULL OR ${t.endsAt} IS NULL OR ${t.startsAt} < ${t.endsAt}`,
    ),
  ],
);
