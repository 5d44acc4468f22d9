import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";

/**
 * Append-only (a trigger refuses UPDATE and DELETE). The entries of one ledger transaction are
 * written by one statement, and a statement trigger checks that they sum to zero.
 * `seq` and `settled_after` are set for user accounts only: numbering a system account's
 * entries would need a counter row that every transaction updates.
 */
export const entries = pgTable(
  "entries",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    transactionId: uuid("transaction_id")
      .notNull()
      .references(() => ledgerTransactions.id),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    seq: bigint("seq", { mode: "number" }),
    amount: bigint("amount", { mode: "number" }).notNull(),
    settledAfter: bigint("settled_after", { mode: "number" }),
    kind: text("kind", { enum: ["credit", "purchase", "promotion", "adjustment"] }).notNull(),
    holdId: uuid("hold_id"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("entries_account_seq").on(t.accountId, t.seq),
    index("entries_account_id").on(t.accountId, t.id),
    index("entries_transaction").on(t.transactionId),
    check(
      "entries_amount_range",
      sql`${t.amount} <> 0 AND ${t.amount} BETWEEN -${MAX_AMOUNT_SQL} AND ${MAX_AMOUNT_SQL}`,
    ),
    check("entries_seq_positive", sql`${t.seq} IS NULL OR ${t.seq} >= 1`),
  ],
);
