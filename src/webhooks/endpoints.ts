import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import { oneShardAtATime } from "../db/distribute.ts";
import type { EventType } from "../db/schema/index.ts";
import { type Feed, highestPosition } from "../events/feeds.ts";
import { toIso } from "../ledger/rows.ts";

export interface WebhookEndpoint {
  id: string;
  url: string;
  /** The event types it receives; null: all. */
  types: EventType[] | null;
  createdAt: string;
}

/** An endpoint as created or rotated: the only times its secret is shown. */
export type WithSecret = WebhookEndpoint & { secret: string };

type EndpointRow = { id: string; url: string; types: EventType[] | null; created_at: string };

/** The types as JSON: postgres.js is not asked to parse arrays (see createDb). */
const ENDPOINT_COLUMNS = sql.raw("id, url, to_jsonb(types) AS types, created_at");

const toEndpoint = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  url: row.url,
  types: row.types,
  createdAt: toIso(row.created_at),
});

/** How long the previous secret keeps signing after a rotation. */
export const ROTATION_OVERLAP_HOURS = 24;

/** `{hold.settled,hold.refunded}`: event types need no quoting, and Citus takes no subquery here. */
const typesLiteral = (types: EventType[] | undefined) => (types ? `{${types.join(",")}}` : null);

const newSecret = () => `whsec_${randomBytes(32).toString("base64url")}`;

/**
 * Subscribes `url` to the events placed from now on (of `types`, or all): its cursor in each
 * feed starts at the feed's last position, or, in a feed that has placed none yet, at the
 * highest position of any feed, where that feed will start.
 */
export async function createEndpoint(
  db: Db,
  input: { url: string; types?: EventType[] | undefined },
  feeds: Feed[],
): Promise<WithSecret> {
  const secret = newSecret();
  const id = v7();
  return atomically(db, async (tx) => {
    await oneShardAtATime(tx);
    const highest = await highestPosition(tx);
    const heads = await tx.execute<{ bucket: number; position: number }>(
      sql`SELECT bucket, position FROM event_feeds`,
    );
    const start = (home: number) => heads.find((h) => h.bucket === home)?.position ?? highest;
    const [row] = await tx.execute<Omit<EndpointRow, "types">>(sql`
      INSERT INTO webhook_endpoints (id, url, types, secret, cursor)
      VALUES (${id}, ${input.url}, ${typesLiteral(input.types)}::text[], ${secret}, ${highest})
      RETURNING id, url, created_at`);
    await tx.execute(sql`
      INSERT INTO webhook_cursors (bucket, endpoint_id, position)
      VALUES ${sql.join(
        feeds.map((f) => sql`(${f.home}::int, ${id}::uuid, ${start(f.home)}::int8)`),
        sql`, `,
      )}`);
    return { ...toEndpoint({ ...row!, types: input.types ?? null }), secret };
  });
}

export async function listEndpoints(db: Db): Promise<WebhookEndpoint[]> {
  const rows = await db.execute<EndpointRow>(
    sql`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id`,
  );
  return rows.map(toEndpoint);
}

/** Removes the endpoint, its pending deliveries and its attempts; false when there was none. */
export async function deleteEndpoint(db: Db, id: string): Promise<boolean> {
  const rows = await db.execute(sql`DELETE FROM webhook_endpoints WHERE id = ${id} RETURNING id`);
  return rows.length === 1;
}

/** A new secret; the current one keeps signing beside it for ROTATION_OVERLAP_HOURS. */
export async function rotateSecret(db: Db, id: string): Promise<WithSecret | undefined> {
  const secret = newSecret();
  const rotated = await db.execute(sql`
    UPDATE webhook_endpoints
       SET previous_secret = secret, secret = ${secret},
           previous_secret_until = now() + make_interval(hours => ${ROTATION_OVERLAP_HOURS})
     WHERE id = ${id}
    RETURNING id`);
  if (rotated.length === 0) return undefined;
  const [row] = await db.execute<EndpointRow>(
    sql`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ${id}`,
  );
  return { ...toEndpoint(row!), secret };
}

export interface WebhookAttempt {
  eventId: string;
  type: EventType;
  accountId: string;
  sequence: number;
  attempt: number;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  attemptedAt: string;
}

type AttemptRow = {
  event_id: string;
  type: EventType;
  account_id: string;
  sequence: number;
  attempt: number;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  attempted_at: string;
};

/** The endpoint's latest delivery attempts, newest first; undefined when there is no endpoint. */
export async function listAttempts(
  db: Db,
  id: string,
  limit: number,
): Promise<WebhookAttempt[] | undefined> {
  const [endpoint] = await db.execute(sql`SELECT 1 FROM webhook_endpoints WHERE id = ${id}`);
  if (!endpoint) return undefined;
  const rows = await db.execute<AttemptRow>(sql`
    SELECT event_id, type, account_id, sequence, attempt, status_code, latency_ms, error,
           attempted_at
      FROM webhook_attempts WHERE endpoint_id = ${id}
     ORDER BY attempted_at DESC, id DESC LIMIT ${limit}`);
  return rows.map((r) => ({
    eventId: r.event_id,
    type: r.type,
    accountId: r.account_id,
    sequence: r.sequence,
    attempt: r.attempt,
    statusCode: r.status_code,
    latencyMs: r.latency_ms,
    error: r.error,
    attemptedAt: toIso(r.attempted_at),
  }));
}
