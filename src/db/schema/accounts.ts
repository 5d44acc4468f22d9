import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";
import { MAX_AMOUNT_SQL } from "./amounts.ts";
import { bucket } from "./bucket.ts";

/**
 * One row per user account, in its own bucket, with its `settled` and `held` balances, so that
 * a balance read is one row; `last_seq` is the seq of its newest entry.
 *
 * A system account (id starting with `@`) has one row in EVERY bucket: the postings of the
 * bucket's user accounts add to it, so no row is updated by every transaction, and on Citus a
 * posting's two sides are on one shard. Its balance is the sum of its rows.
 */
export const accounts = pgTable(
  "accounts",
  {
    bucket: bucket(),
    id: text("id").notNull(),
    kind: text("kind", { enum: ["user", "system"] }).notNull(),
    settled: bigint("settled", { mode: "number" }).notNull().default(0),
    held: bigint("held", { mode: "number" }).notNull().default(0),
    lastSeq: bigint("last_seq", { mode: "number" }).notNull().default(0),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.id] }),
    index("accounts_id").on(t.id),
    check(
      "accounts_user_in_own_bucket",
      sql`${t.kind} = 'system' OR ${t.bucket} = holdfast_bucket(${t.id})`,
    ),
    check("accounts_kind_matches_id", sql`(${t.kind} = 'system') = (${t.id} LIKE '@%')`),
    check(
      "accounts_user_balance_bounds",
      sql`${t.kind} = 'system' OR (${t.held} >= 0 AND ${t.settled} - ${t.held} >= 0 AND ${t.settled} <= ${MAX_AMOUNT_SQL})`,
    ),
    check("accounts_system_holds_nothing", sql`${t.kind} = 'user' OR ${t.held} = 0`),
  ],
);
