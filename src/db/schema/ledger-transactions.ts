import { jsonb, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { bucket } from "./bucket.ts";

export const ENTRY_KINDS = ["credit", "purchase", "promotion", "refund", "adjustment"] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/** In the bucket of its user account; the id carries it, as a hold's does. */
export const ledgerTransactions = pgTable(
  "ledger_transactions",
  {
    bucket: bucket(),
    id: uuid("id").notNull(),
    kind: text("kind", { enum: ENTRY_KINDS }).notNull(),
    reason: text("reason"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.id] })],
);
