import { sql } from "drizzle-orm";
import { bigint, check, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { MAX_AMOUNT_SQL } from "./amounts.ts";

/**
 * One row per account. A user account's `settled` and `held` are kept here so that a balance
 * read is one row. System accounts (ids starting with `@`) keep their balance in
 * `system_balances` stripes instead, so no single row is updated by every transaction.
 * `last_seq` is the seq of the account's newest entry.
 */
export const accounts = pgTable(
  "accounts",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: ["user", "system"] }).notNull(),
    settled: bigint("settled", { mode: "number" }).notNull().default(0),
    held: bigint("held", { mode: "number" }).notNull().default(0),
    lastSeq: bigint("last_seq", { mode: "number" }).notNull().default(0),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    check("accounts_kind_matches_id", sql`(${t.kind} = 'system') = (${t.id} LIKE '@%')`),
    check(
      "accounts_user_balance_bounds",
      sql`${t.kind} = 'system' OR (${t.held} >= 0 AND ${t.settled} - ${t.held} >= 0 AND ${t.settled} <= ${MAX_AMOUNT_SQL})`,
    ),
    check(
      "accounts_system_balance_elsewhere",
      sql`${t.kind} = 'user' OR (${t.settled} = 0 AND ${t.held} = 0)`,
    ),
  ],
);
