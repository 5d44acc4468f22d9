import { sql } from "drizzle-orm";
import { bigint, check, pgTable, primaryKey, smallint, text } from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";

export const SYSTEM_BALANCE_STRIPES = 16;

/**
 * A system account's settled balance is the sum of its stripes. A posting adds to the stripe
 * of its connection (see src/ledger/post-transaction.ts), so concurrent transactions rarely
 * wait on each other here.
 */
export const systemBalances = pgTable(
  "system_balances",
  {
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    stripe: smallint("stripe").notNull(),
    settled: bigint("settled", { mode: "number" }).notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.accountId, t.stripe] }),
    check(
      "system_balances_stripe_range",
      sql`${t.stripe} >= 0 AND ${t.stripe} < ${sql.raw(String(SYSTEM_BALANCE_STRIPES))}`,
    ),
  ],
);
