import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  foreignKey,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { bucket } from "./bucket.ts";
import { holds } from "./holds.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";

/**
 * A refund of part or all of a settled hold, in the hold's bucket: its one `refund` ledger
 * transaction (user +amount, @revenue −amount) is unique to it. Append-only, like entries.
 */
export const refunds = pgTable(
  "refunds",
  {
    bucket: bucket(),
    id: uuid("id").notNull(),
    holdId: uuid("hold_id").notNull(),
    accountId: text("account_id").notNull(),
    amount: bigint("amount", { mode: "number" }).notNull(),
    reason: text("reason"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    transactionId: uuid("transaction_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.id] }),
    foreignKey({ columns: [t.bucket, t.holdId], foreignColumns: [holds.bucket, holds.id] }),
    foreignKey({
      columns: [t.bucket, t.accountId],
      foreignColumns: [accounts.bucket, accounts.id],
    }),
    foreignKey({
      columns: [t.bucket, t.transactionId],
      foreignColumns: [ledgerTransactions.bucket, ledgerTransactions.id],
    }),
    uniqueIndex("refunds_transaction").on(t.bucket, t.transactionId),
    uniqueIndex("refunds_hold_id").on(t.bucket, t.holdId, t.id),
    check("refunds_amount_range", sql`${t.amount} BETWEEN 1 AND ${MAX_AMOUNT_SQL}`),
  ],
);
