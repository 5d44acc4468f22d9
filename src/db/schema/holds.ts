import { sql } from "drizzle-orm";
import { bigint, check, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";

export const HOLD_STATUSES = ["pending", "settled", "released", "expired"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/** A trigger refuses any change to a hold that is no longer pending, and any DELETE. */
export const holds = pgTable(
  "holds",
  {
    id: uuid("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    amount: bigint("amount", { mode: "number" }).notNull(),
    status: text("status", { enum: HOLD_STATUSES }).notNull().default("pending"),
    settledAmount: bigint("settled_amount", { mode: "number" }),
    transactionId: uuid("transaction_id").references(() => ledgerTransactions.id),
    orderId: text("order_id"),
    description: text("description"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    reason: text("reason"),
    expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    resolvedAt: timestamp("resolved_at", { withTimezone: true, precision: 3 }),
  },
  (t) => [
    index("holds_account_id").on(t.accountId, t.id),
    index("holds_pending_expiry").on(t.expiresAt).where(sql`${t.status} = 'pending'`),
    check("holds_amount_range", sql`${t.amount} BETWEEN 1 AND ${MAX_AMOUNT_SQL}`),
    check(
      "holds_resolved_iff_terminal",
      sql`(${t.status} = 'pending') = (${t.resolvedAt} IS NULL)`,
    ),
    check(
      "holds_settled_shape",
      sql`(${t.status} = 'settled') = (${t.settledAmount} IS NOT NULL AND ${t.transactionId} IS NOT NULL)`,
    ),
    check(
      "holds_settled_amount_range",
      sql`${t.settledAmount} IS NULL OR ${t.settledAmount} BETWEEN 1 AND ${t.amount}`,
    ),
  ],
);
