import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  foreignKey,
  index,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { bucket } from "./bucket.ts";
import { ENTRY_KINDS, ledgerTransactions } from "./ledger-transactions.ts";

/**
 * Append-only (a trigger refuses UPDATE and DELETE). A ledger transaction has two legs, the
 * user account's (0) and the system account's (1), in the transaction's bucket, written by one
 * statement; a statement trigger checks that each transaction it writes has both and that
 * they sum to zero, and the unique (bucket, transaction_id, leg) keeps any later statement
 * from adding to it. Both checks read only the row's own shard.
 * `seq` and `settled_after` are set for user accounts only: numbering a system account's
 * entries would need a counter row that every transaction updates.
 */
export const entries = pgTable(
  "entries",
  {
    bucket: bucket(),
    id: bigint("id", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    transactionId: uuid("transaction_id").notNull(),
    leg: smallint("leg").notNull(),
    accountId: text("account_id").notNull(),
    seq: bigint("seq", { mode: "number" }),
    amount: bigint("amount", { mode: "number" }).notNull(),
    settledAfter: bigint("settled_after", { mode: "number" }),
    kind: text("kind", { enum: ENTRY_KINDS }).notNull(),
    holdId: uuid("hold_id"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.id] }),
    foreignKey({
      columns: [t.bucket, t.transactionId],
      foreignColumns: [ledgerTransactions.bucket, ledgerTransactions.id],
    }),
    foreignKey({
      columns: [t.bucket, t.accountId],
      foreignColumns: [accounts.bucket, accounts.id],
    }),
    uniqueIndex("entries_account_seq").on(t.bucket, t.accountId, t.seq),
    uniqueIndex("entries_transaction_leg").on(t.bucket, t.transactionId, t.leg),
    index("entries_account_id").on(t.accountId, t.id),
    check(
      "entries_amount_range",
      sql`${t.amount} <> 0 AND ${t.amount} BETWEEN -${MAX_AMOUNT_SQL} AND ${MAX_AMOUNT_SQL}`,
    ),
    check("entries_seq_positive", sql`${t.seq} IS NULL OR ${t.seq} >= 1`),
    check("entries_leg", sql`${t.leg} IN (0, 1) AND (${t.leg} = 1) = (${t.accountId} LIKE '@%')`),
  ],
);
