import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  foreignKey,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { bucket } from "./bucket.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";

export const HOLD_STATUSES = ["pending", "settled", "released", "expired"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/**
 * A trigger refuses any change to a hold that is no longer pending, but a settled hold's
 * refundedAmount growing (src/db/sql/hold_terminal.sql), and any DELETE. The id
 * carries the bucket (src/ledger/ids.ts), so a hold is found from its id alone.
 */
export const holds = pgTable(
  "holds",
  {
    bucket: bucket(),
    id: uuid("id").notNull(),
    accountId: text("account_id").notNull(),
    amount: bigint("amount", { mode: "number" }).notNull(),
    status: text("status", { enum: HOLD_STATUSES }).notNull().default("pending"),
    settledAmount: bigint("settled_amount", { mode: "number" }),
    /** The sum of the hold's refunds (src/db/sql/refund_holds.sql), at most settledAmount. */
    refundedAmount: bigint("refunded_amount", { mode: "number" }).notNull().default(0),
    transactionId: uuid("transaction_id"),
    orderId: text("order_id"),
    description: text("description"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    reason: text("reason"),
    expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    resolvedAt: timestamp("resolved_at", { withTimezone: true, precision: 3 }),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.id] }),
    foreignKey({
      columns: [t.bucket, t.accountId],
      foreignColumns: [accounts.bucket, accounts.id],
    }).onDelete("no action"),
    foreignKey({
      columns: [t.bucket, t.transactionId],
      foreignColumns: [ledgerTransactions.bucket, ledgerTransactions.id],
    }),
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
      "holds_refunded_within_settled",
      sql`${t.refundedAmount} >= 0 AND ${t.refundedAmount} <= COALESCE(${t.settledAmount}, 0)`,
    ),
    check(
      "holds_settled_amount_range",
      sql`${t.settledAmount} IS NULL OR ${t.settledAmount} BETWEEN 1 AND ${t.amount}`,
    ),
  ],
);
