import { bigint, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { ledgerTransactions } from "./ledger-transactions.ts";
import { promotions } from "./promotions.ts";

/** The primary key makes "once per account" a database guarantee, not a read-then-write. */
export const redemptions = pgTable(
  "redemptions",
  {
    promotionCode: text("promotion_code")
      .notNull()
      .references(() => promotions.code),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    basis: bigint("basis", { mode: "number" }).notNull(),
    credited: bigint("credited", { mode: "number" }).notNull(),
    transactionId: uuid("transaction_id").references(() => ledgerTransactions.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.promotionCode, t.accountId] })],
);
