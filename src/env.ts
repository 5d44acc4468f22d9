import { z } from "zod";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.url().optional());

/** One `host:port` of REDIS_CLUSTER_NODES; an IPv6 host is written in brackets, `[::1]:7000`. */
export interface RedisNode {
  host: string;
  port: number;
}

const clusterNodes = z.string().transform((value, ctx): RedisNode[] => {
  const nodes: RedisNode[] = [];
  for (const entry of value.split(",").map((e) => e.trim())) {
    const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({
        code: "custom",
        message: `expected host:port[,host:port…] with ports 1-65535, got "${entry}"`,
      });
      return z.NEVER;
    }
    nodes.push({ host: match[1]!.replace(/^\[|\]$/g, ""), port });
  }
  return nodes;
});

/**
 * Whether a Redis Cluster would keep the prefix's keys in one slot: Redis hashes only what lies
 * between the first `{` and the next `}`, when that is not empty.
 */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf("{");
  return open >= 0 && prefix.indexOf("}", open + 1) > open + 1;
}

const EnvFields = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  DATABASE_URL: z.url().default("postgres://127.0.0.1:5432/holdfast"),
  REDIS_URL: z.url().default("redis://127.0.0.1:6379"),
  REDIS_CLUSTER_NODES: clusterNodes.optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOLDFAST_ADMIN_TOKEN: z.string().min(16).optional(),
  HOLDFAST_SERVICE_TOKEN: z.string().min(16).optional(),
  FULFILMENT_URL: optionalUrl,
  FULFILMENT_SECRET: z.string().min(1).optional(),
  HOLDFAST_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).max(86_400_000).default(30_000),
  HOLDFAST_DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  HOLDFAST_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(1).max(600_000).default(15_000),
  HOLDFAST_BATCH_WINDOW_MS: z.coerce.number().min(0).max(50).default(1),
  HOLDFAST_BATCH_MAX: z.coerce.number().int().min(1).max(1000).default(64),
  HOLDFAST_QUEUE_PREFIX: z.string().min(1).default("{holdfast}"),
  HOLDFAST_FULFIL_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(100),
  /** 1: /readyz answers 503 while expiry is paused, so a load balancer or probe acts on it. */
  HOLDFAST_READY_STRICT: z
    .enum(["0", "1"])
    .default("0")
    .transform((v) => v === "1"),
  /** How long a webhook delivery is retried, with exponential backoff, before it is given up. */
  HOLDFAST_WEBHOOK_RETRY_HOURS: z.coerce.number().positive().max(720).default(24),
  /**
   * off: write no events. Only to measure what the outbox costs (npm run bench): the feed and
   * the webhooks never see what is written meanwhile, and `holdfast verify` reports it.
   */
  HOLDFAST_EVENTS: z
    .enum(["on", "off"])
    .default("on")
    .transform((v) => v === "on"),
  /** The dashboard's write actions (break-glass); unset, nobody can retry, pause or delete. */
  HOLDFAST_OPS_TOKEN: z.string().min(16).optional(),
  LOG_LEVEL: LogLevel.default("info"),
});

// BullMQ's scripts touch many keys of a queue at once, which a cluster allows only within one
// slot; without a hash tag the keys spread over the cluster and every script fails CROSSSLOT.
export const EnvSchema = EnvFields.refine(
  (env) => !env.REDIS_CLUSTER_NODES || hasHashTag(env.HOLDFAST_QUEUE_PREFIX),
  {
    path: ["HOLDFAST_QUEUE_PREFIX"],
    message: "with REDIS_CLUSTER_NODES the prefix needs a {hash tag}, such as {holdfast}",
  },
);

export type Env = z.infer<typeof EnvSchema> & {
  HOLDFAST_ADMIN_TOKEN: string;
  HOLDFAST_SERVICE_TOKEN: string;
};

export class EnvError extends Error {}

const DEV_ADMIN_TOKEN = "dev-admin-token";
const DEV_SERVICE_TOKEN = "dev-service-token";

/**
 * Parses the environment once. Throws EnvError naming the offending variable; the CLI turns
 * that into one line and exit 1. Outside production, missing tokens fall back to the
 * documented development tokens and `warnings` says so.
 */
export function parseEnv(source: NodeJS.ProcessEnv = process.env): {
  env: Env;
  warnings: string[];
} {
  const cleaned = Object.fromEntries(
    Object.entries(source).filter(([k, v]) => k in EnvSchema.shape && v !== ""),
  );
  const result = EnvSchema.safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? "environment");
    throw new EnvError(`invalid environment variable ${name}: ${issue.message}`);
  }
  const parsed = result.data;
  const warnings: string[] = [];
  if (!parsed.HOLDFAST_ADMIN_TOKEN || !parsed.HOLDFAST_SERVICE_TOKEN) {
    if (parsed.NODE_ENV === "production") {
      const missing = !parsed.HOLDFAST_ADMIN_TOKEN
        ? "HOLDFAST_ADMIN_TOKEN"
        : "HOLDFAST_SERVICE_TOKEN";
      throw new EnvError(`invalid environment variable ${missing}: required in production`);
    }
    warnings.push(
      "HOLDFAST_ADMIN_TOKEN / HOLDFAST_SERVICE_TOKEN not set: using the development tokens dev-admin-token / dev-service-token",
    );
  }
  const env: Env = {
    ...parsed,
    HOLDFAST_ADMIN_TOKEN: parsed.HOLDFAST_ADMIN_TOKEN ?? DEV_ADMIN_TOKEN,
    HOLDFAST_SERVICE_TOKEN: parsed.HOLDFAST_SERVICE_TOKEN ?? DEV_SERVICE_TOKEN,
  };
  if (env.HOLDFAST_ADMIN_TOKEN === env.HOLDFAST_SERVICE_TOKEN) {
    throw new EnvError(
      "invalid environment variable HOLDFAST_SERVICE_TOKEN: must differ from HOLDFAST_ADMIN_TOKEN",
    );
  }
  // A break-glass credential equal to a daily one would give every admin the write actions.
  if (
    env.HOLDFAST_OPS_TOKEN !== undefined &&
    [env.HOLDFAST_ADMIN_TOKEN, env.HOLDFAST_SERVICE_TOKEN].includes(env.HOLDFAST_OPS_TOKEN)
  ) {
    throw new EnvError(
      "invalid environment variable HOLDFAST_OPS_TOKEN: must differ from the admin and service tokens",
    );
  }
  return { env, warnings };
}
