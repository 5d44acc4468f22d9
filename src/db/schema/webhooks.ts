import { sql } from "drizzle-orm";
import {
  bigint,
  foreignKey,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { bucket } from "./bucket.ts";

const at = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

/**
 * A subscriber. Its place in each shard's feed is a webhook_cursors row; `cursor` is the highest
 * position in any feed when it was created, where its place in a shard's feed starts when that
 * row is missing (an endpoint created before the feeds were per shard). During the 24 h after
 * a rotation the previous secret signs too.
 */
export const webhookEndpoints = pgTable("webhook_endpoints", {
  id: uuid("id").primaryKey(),
  url: text("url").notNull(),
  /** The event types it receives; null: all of them. */
  types: text("types").array(),
  secret: text("secret").notNull(),
  previousSecret: text("previous_secret"),
  previousSecretUntil: at("previous_secret_until"),
  cursor: bigint("cursor", { mode: "number" }).notNull().default(0),
  createdAt: at("created_at").notNull().defaultNow(),
});

/**
 * An endpoint's place in one shard's feed, in the shard's home bucket: the position up to which
 * the dispatcher has made its deliveries (src/webhooks/dispatch.ts). A new endpoint starts at
 * each feed's end.
 */
export const webhookCursors = pgTable(
  "webhook_cursors",
  {
    bucket: bucket(),
    endpointId: uuid("endpoint_id").notNull(),
    position: bigint("position", { mode: "number" }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.endpointId] }),
    foreignKey({ columns: [t.endpointId], foreignColumns: [webhookEndpoints.id] }).onDelete(
      "cascade",
    ),
  ],
);

export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;

/**
 * One event to deliver to one endpoint, in the event's bucket. An account's deliveries to an
 * endpoint go out in `sequence` order, one at a time; a pending one holds back the later ones
 * of the same account only. `failed`: retried until the retry window ended.
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    bucket: bucket(),
    endpointId: uuid("endpoint_id").notNull(),
    accountId: text("account_id").notNull(),
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    eventId: uuid("event_id").notNull(),
    type: text("type").notNull(),
    status: text("status", { enum: DELIVERY_STATUSES }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: at("next_attempt_at").notNull().defaultNow(),
    createdAt: at("created_at").notNull().defaultNow(),
    deliveredAt: at("delivered_at"),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.endpointId, t.accountId, t.sequence] }),
    foreignKey({ columns: [t.endpointId], foreignColumns: [webhookEndpoints.id] }).onDelete(
      "cascade",
    ),
    index("webhook_deliveries_due").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // Each lane's first pending delivery, read by the dispatcher every tick.
    index("webhook_deliveries_pending_lanes")
      .on(t.endpointId, t.bucket, t.accountId, t.sequence)
      .where(sql`${t.status} = 'pending'`),
  ],
);

/** Every delivery attempt, for GET /v1/webhook-endpoints/{id}/deliveries. */
export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    bucket: bucket(),
    id: bigint("id", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    endpointId: uuid("endpoint_id").notNull(),
    eventId: uuid("event_id").notNull(),
    accountId: text("account_id").notNull(),
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    type: text("type").notNull(),
    attempt: integer("attempt").notNull(),
    /** The HTTP status, or null when there was none (a timeout, a refused connection). */
    statusCode: integer("status_code"),
    latencyMs: integer("latency_ms").notNull(),
    error: text("error"),
    attemptedAt: at("attempted_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.id] }),
    foreignKey({ columns: [t.endpointId], foreignColumns: [webhookEndpoints.id] }).onDelete(
      "cascade",
    ),
    index("webhook_attempts_endpoint").on(t.endpointId, t.attemptedAt),
  ],
);
