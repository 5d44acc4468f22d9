import { index, integer, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import { bucket } from "./bucket.ts";

/**
 * The stored first response of an idempotent request. The row is inserted and completed in
 * the same transaction as the request's effect, so a committed row always has its response
 * and a rolled-back request leaves no key behind. A key belongs to the resource its request
 * names (`scope`: the account, the hold, or the promotion created) and is kept in that
 * resource's bucket, beside the rows the request writes.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    bucket: bucket(),
    role: text("role", { enum: ["admin", "service"] }).notNull(),
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status").notNull(),
    responseBody: text("response_body").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.role, t.scope, t.key] }),
    index("idempotency_keys_created_at").on(t.createdAt),
  ],
);
