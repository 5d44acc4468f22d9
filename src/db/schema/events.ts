import { sql } from "drizzle-orm";
import {
  bigint,
  foreignKey,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { accounts } from "./accounts.ts";
import { bucket } from "./bucket.ts";

export const EVENT_TYPES = [
  "account.created",
  "account.credited",
  "account.adjusted",
  "hold.placed",
  "hold.settled",
  "hold.released",
  "hold.expired",
  "hold.refunded",
  "promotion.redeemed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The transactional outbox: one row per state change of a user account, written in the
 * change's transaction (src/events/append-events.ts), in the account's bucket. `id` is a
 * UUIDv7, unique by construction and not indexed (nothing looks an event up by it). `sequence`
 * numbers an account's events 1, 2, 3, …; `n` is the order they were written in, which for one
 * account is their sequence order (each is written under the account's row lock). `position`
 * is the event's place in its shard's feed, given once the row has committed
 * (src/events/place-events.ts): null until then. A trigger refuses any other change, and any
 * DELETE.
 */
export const events = pgTable(
  "events",
  {
    bucket: bucket(),
    id: uuid("id").notNull(),
    n: bigint("n", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    position: bigint("position", { mode: "number" }),
    accountId: text("account_id").notNull(),
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    type: text("type", { enum: EVENT_TYPES }).notNull(),
    data: jsonb("data").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.bucket, t.accountId, t.sequence] }),
    foreignKey({
      columns: [t.bucket, t.accountId],
      foreignColumns: [accounts.bucket, accounts.id],
    }),
    index("events_position").on(t.position).where(sql`${t.position} IS NOT NULL`),
    index("events_unpositioned").on(t.n).where(sql`${t.position} IS NULL`),
  ],
);

/**
 * One feed per shard, in its home bucket (src/db/shards.ts): `position` is the last position it
 * gave. Placing events in a shard's feed locks its row, so it is a transaction on that shard
 * alone (src/events/place-events.ts).
 */
export const eventFeeds = pgTable("event_feeds", {
  bucket: bucket().primaryKey(),
  position: bigint("position", { mode: "number" }).notNull(),
});
