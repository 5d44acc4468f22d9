import { jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

export const ledgerTransactions = pgTable("ledger_transactions", {
  id: uuid("id").primaryKey(),
  kind: text("kind", { enum: ["credit", "purchase", "promotion", "adjustment"] }).notNull(),
  reason: text("reason"),
  metadata: jsonb("metadata").$type<Record<string, unknown>>(),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});
