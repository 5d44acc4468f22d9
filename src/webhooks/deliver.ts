import { sql } from "drizzle-orm";
import { request } from "undici";
import type { Database } from "../db/client.ts";
import { type EventRow, toEvent } from "../events/list-events.ts";
import type { DeliveryLane } from "./dispatch.ts";
import { holdfastSignature } from "./signature.ts";

export const WEBHOOK_TIMEOUT_MS = 10_000;

export interface DeliveryOptions {
  /** How long an event is retried before it is given up (HOLDFAST_WEBHOOK_RETRY_HOURS). */
  retryHours: number;
  /** The first retry's delay; each next one doubles, up to an hour. */
  retryBaseMs: number;
  timeoutMs?: number | undefined;
}

/** A delivery that failed and will be tried again, at `retryAt` (ms since the epoch). */
export class WebhookDeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAt: number,
  ) {
    super(message);
    this.name = "WebhookDeliveryError";
  }
}

type Head = EventRow & { attempts: number; expired: boolean; due: boolean };

const backoffMs = (attempts: number, baseMs: number) =>
  Math.min(baseMs * 2 ** (attempts - 1), 3_600_000) * (0.8 + Math.random() * 0.4);

/** POSTs one event; the HTTP status, or the error that stood for one. */
async function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body,
      signal: controller.signal,
    });
    await response.body.dump();
    return { status: response.statusCode };
  } catch (error) {
    return { status: null, error: (error as Error).message || String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Delivers a lane's pending deliveries in sequence order, one at a time, while they are due:
 * a 2xx marks one delivered (at least once: a crash before that mark sends it again), anything
 * else records the attempt, schedules the next with exponential backoff and throws, holding
 * back the lane's later events (and no other lane's). An event still failing once the retry
 * window (by the database's clock) has passed since it was made is marked `failed` and the
 * lane goes on. Every attempt is recorded. Answers how many were delivered.
 */
export async function deliverLane(
  db: Database,
  lane: Pick<DeliveryLane, "endpointId" | "bucket" | "accountId">,
  options: DeliveryOptions,
  onAttempt?: (line: string) => Promise<unknown>,
): Promise<number> {
  const [endpoint] = await db.execute<{
    url: string;
    secrets: string[];
  }>(sql`
    SELECT url, jsonb_build_array(secret) || CASE WHEN previous_secret_until > now()
             THEN jsonb_build_array(previous_secret) ELSE '[]'::jsonb END AS secrets
      FROM webhook_endpoints WHERE id = ${lane.endpointId}`);
  if (!endpoint) return 0;
  let delivered = 0;
  for (;;) {
    const [head] = await db.execute<Head>(sql`
      SELECT e.id, e.type, e.account_id, e.sequence, e.created_at, e.data, e.position,
             d.attempts, d.next_attempt_at <= now() AS due,
             d.created_at <= now() - make_interval(secs => ${options.retryHours * 3600}) AS expired
        FROM webhook_deliveries d
        JOIN events e ON e.bucket = d.bucket AND e.account_id = d.account_id AND e.sequence = d.sequence
       WHERE d.bucket = ${lane.bucket} AND d.endpoint_id = ${lane.endpointId}
         AND d.account_id = ${lane.accountId} AND d.status = 'pending'
       ORDER BY d.sequence LIMIT 1`);
    if (!head?.due) return delivered;
    const event = toEvent(head);
    const body = JSON.stringify(event);
    const started = performance.now();
    const answer = await post(
      endpoint.url,
      body,
      {
        "Holdfast-Event-Id": event.id,
        "Holdfast-Signature": holdfastSignature(endpoint.secrets, body),
      },
      options.timeoutMs ?? WEBHOOK_TIMEOUT_MS,
    );
    const latencyMs = Math.round(performance.now() - started);
    const ok = answer.status !== null && answer.status >= 200 && answer.status < 300;
    const attempt = head.attempts + 1;
    const error = ok ? null : (answer.error ?? `HTTP ${answer.status}`);
    const status = ok ? "delivered" : head.expired ? "failed" : "pending";
    const delayMs = backoffMs(attempt, options.retryBaseMs);
    const key = sql`bucket = ${lane.bucket} AND endpoint_id = ${lane.endpointId}
                    AND account_id = ${lane.accountId} AND sequence = ${event.sequence}`;
    await db.transaction(async (tx) => {
      await tx.execute(sql`
        INSERT INTO webhook_attempts (bucket, endpoint_id, event_id, account_id, sequence, type,
                                      attempt, status_code, latency_ms, error)
        VALUES (${lane.bucket}, ${lane.endpointId}, ${event.id}, ${event.accountId},
                ${event.sequence}, ${event.type}, ${attempt}, ${answer.status}, ${latencyMs},
                ${error})`);
      // Only if no one else recorded this attempt: a second run of the lane (a job redelivered
      // after a Redis wipe while the first still ran) neither undoes a delivery nor counts twice.
      await tx.execute(sql`
        UPDATE webhook_deliveries
           SET status = ${status}, attempts = ${attempt},
               delivered_at = ${ok ? sql`now()` : sql`NULL`},
               next_attempt_at = now() + make_interval(secs => ${delayMs / 1000})
         WHERE ${key} AND status = 'pending' AND attempts = ${head.attempts}`);
    });
    const what = `${event.type} #${event.sequence} of ${event.accountId}, attempt ${attempt}`;
    await onAttempt?.(
      `${what}: ${ok ? `delivered (HTTP ${answer.status}, ${latencyMs} ms)` : `${error}${status === "failed" ? ", given up" : ", will retry"}`}`,
    );
    if (ok) delivered++;
    else if (status === "pending")
      throw new WebhookDeliveryError(`${what}: ${error}`, Date.now() + delayMs);
  }
}
