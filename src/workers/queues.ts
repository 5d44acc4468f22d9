import { type JobsOptions, Queue, UnrecoverableError } from "bullmq";
import { z } from "zod";
import type { RedisClient } from "../process/connections.ts";
import type { Hold } from "../reservations/hold.ts";
import { attemptsUntil, CAPPED_BACKOFF, RETRY_BASE_MS } from "./retry-schedule.ts";

export const QUEUE_NAMES = {
  expire: "holds-expire",
  fulfil: "holds-fulfil",
  sweep: "holds-sweep",
  webhooks: "webhooks",
} as const;

/**
 * The payload of expire and fulfil jobs. The processors read only `holdId` and take the hold
 * from Postgres; the other fields are there for the dashboard (whose hold, how much, which
 * order, until when), and jobs enqueued without them still parse.
 */
export const HoldJobData = z.strictObject({
  holdId: z.uuid(),
  accountId: z.string().optional(),
  amount: z.number().optional(),
  orderId: z.string().nullable().optional(),
  expiresAt: z.string().optional(),
});
export type HoldJobData = z.infer<typeof HoldJobData>;
export const SweepJobData = z.strictObject({});
export type SweepJobData = z.infer<typeof SweepJobData>;

/**
 * Job ids derived from the hold id, so enqueueing a hold's job again (a replayed purchase, the
 * sweep) is a no-op while the job exists. BullMQ refuses custom ids that are integers or that
 * contain ':' (outside its own `repeat:<id>:<millis>` ids), hence the dash.
 */
export const expireJobId = (holdId: string) => `expire-${holdId}`;
export const fulfilJobId = (holdId: string) => `fulfil-${holdId}`;

export type HoldQueue = Queue<HoldJobData>;

/** A webhook delivery lane (src/webhooks/dispatch.ts): one endpoint, one account. */
export const WebhookJobData = z.object({
  endpointId: z.uuid(),
  bucket: z.number().int(),
  accountId: z.string(),
});
export type WebhookJobData = z.infer<typeof WebhookJobData>;

export interface HoldQueues {
  /** The connection the queues use. */
  redis: RedisClient;
  expire: HoldQueue;
  fulfil: HoldQueue;
  sweep: Queue<SweepJobData>;
  webhooks: Queue<WebhookJobData>;
  all: Queue[];
  close(): Promise<void>;
}

/** Completed jobs stay an hour (the dashboard shows them); failed ones a week. */
const KEEP: Pick<JobsOptions, "removeOnComplete" | "removeOnFail"> = {
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/**
 * The hold queues and the webhook deliveries' queue on `connection`, which the caller owns and closes. Producers in the API
 * pass a client that fails fast (no offline queue) and `failFast`, so an enqueue while Redis is
 * down rejects at once instead of waiting for a reconnect; the sweep enqueues later. Such a
 * client must already be connected: BullMQ reads the server version once, when the queue is
 * created.
 */
export function createHoldQueues(
  connection: RedisClient,
  options: { prefix: string; failFast?: boolean },
): HoldQueues {
  const base = {
    connection,
    prefix: options.prefix,
    skipWaitingForReady: options.failFast ?? false,
  };
  const expire: HoldQueue = new Queue(QUEUE_NAMES.expire, base);
  const fulfil: HoldQueue = new Queue(QUEUE_NAMES.fulfil, base);
  const sweep = new Queue<SweepJobData>(QUEUE_NAMES.sweep, base);
  const webhooks = new Queue<WebhookJobData>(QUEUE_NAMES.webhooks, base);
  const all = [expire, fulfil, sweep, webhooks] as Queue[];
  for (const queue of all) queue.on("error", () => {});
  return {
    redis: connection,
    expire,
    fulfil,
    sweep,
    webhooks,
    all,
    close: async () => {
      await Promise.all(all.map((q) => q.close()));
    },
  };
}

/** Parses a job's payload; a malformed one can never succeed, so it is not retried. */
export function parsePayload<T>(schema: z.ZodType<T>, data: unknown): T {
  const result = schema.safeParse(data);
  if (!result.success)
    throw new UnrecoverableError(`malformed job payload: ${z.prettifyError(result.error)}`);
  return result.data;
}

/** What a hold's jobs show of it. */
export type JobHold = Pick<Hold, "id" | "expiresAt" | "accountId" | "amount" | "orderId">;

/** `fulfil · bob · 75 · order ok-1002`: the dashboard lists jobs by name. */
const jobName = (verb: string, hold: JobHold) =>
  [
    verb,
    hold.accountId,
    String(hold.amount),
    ...(hold.orderId ? [`order ${hold.orderId}`] : []),
  ].join(" · ");

const jobData = (hold: JobHold): HoldJobData => ({
  holdId: hold.id,
  accountId: hold.accountId,
  amount: hold.amount,
  orderId: hold.orderId,
  expiresAt: hold.expiresAt,
});

interface JobSpec {
  name: string;
  data: HoldJobData;
  opts: JobsOptions;
}

/**
 * The expire job: delayed until the deadline. Retries cover a database outage; if they run
 * out, the sweep expires the hold anyway.
 */
export function expireJob(hold: JobHold, now = Date.now()): JobSpec {
  return {
    name: jobName("expire", hold),
    data: jobData(hold),
    opts: {
      ...KEEP,
      jobId: expireJobId(hold.id),
      delay: Math.max(0, Date.parse(hold.expiresAt) - now),
      attempts: 10,
      backoff: { type: "exponential", delay: 1000 },
    },
  };
}

/** The fulfil job: due now, retried with capped exponential backoff up to the hold's deadline. */
export function fulfilJob(
  hold: JobHold,
  options: { retryBaseMs?: number | undefined } = {},
  now = Date.now(),
): JobSpec {
  const baseMs = options.retryBaseMs ?? RETRY_BASE_MS;
  return {
    name: jobName("fulfil", hold),
    data: jobData(hold),
    opts: {
      ...KEEP,
      jobId: fulfilJobId(hold.id),
      attempts: attemptsUntil(Date.parse(hold.expiresAt), now, baseMs),
      backoff: { type: CAPPED_BACKOFF, delay: baseMs },
    },
  };
}
