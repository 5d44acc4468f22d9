import { index, integer, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";

/**
 * The stored first response of an idempotent request. The row is inserted and completed in
 * the same transaction as the request's effect, so a committed row always has its response
 * and a rolled-back request leaves no key behind.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    role: text("role", { enum: ["admin", "service"] }).notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status").notNull(),
    responseBody: text("response_body").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.role, t.key] }),
    index("idempotency_keys_created_at").on(t.createdAt),
  ],
);
