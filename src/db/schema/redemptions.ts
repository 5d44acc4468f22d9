import {
  bigint,
  foreignKey,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { bucket } from "./bucket.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";
import { promotions } from "./promotions.ts";

/** The primary key makes "once per account" a database guarantee, not a read-then-write. */
export const redemptions = pgTable(
  "redemptions",
  {
    bucket: bucket(),
    promotionCode: text("promotion_code")
      .notNull()
      .references(() => promotions.code),
    accountId: text("account_id").notNull(),
    basis: bigint("basis", { mode: "number" }).notNull(),
    credited: bigint("credited", { mode: "number" }).notNull(),
    transactionId: uuid("transaction_id"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.promotionCode, t.accountId] }),
    foreignKey({
      columns: [t.bucket, t.accountId],
      foreignColumns: [accounts.bucket, accounts.id],
    }),
    foreignKey({
      columns: [t.bucket, t.transactionId],
      foreignColumns: [ledgerTransactions.bucket, ledgerTransactions.id],
    }),
  ],
);
