import { z } from "zod";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.url().optional());

/** One seed node of REDIS_CLUSTER_NODES; an IPv6 host is written in brackets, `[::1]:7000`. */
export interface RedisNode {
  host: string;
  port: number;
}

/**
 * REDIS_CLUSTER_NODES: the seed nodes, and how every node of the cluster is reached, the seeds
 * and those the client discovers alike.
 */
export interface RedisCluster {
  nodes: RedisNode[];
  /** `rediss://` entries: TLS to every node. */
  tls: boolean;
  username?: string;
  password?: string;
}

const HOST_PORT = /^(\[[^\]]+\]|[^:/@\s]+):(\d{1,5})$/;
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const CLUSTER_ENTRY_FORMS =
  "host:port or redis[s]://[user:password@]host:port, comma-separated, ports 1-65535";

/** An entry as an error message may show it: whatever precedes the last `@` is hidden. */
function shown(entry: string): string {
  const at = entry.lastIndexOf("@");
  const scheme = SCHEME.exec(entry)?.[0] ?? "";
  return at < 0 ? entry : `${scheme}***${entry.slice(at)}`;
}

interface ClusterEntry {
  node: RedisNode;
  scheme: "redis:" | "rediss:";
  username: string;
  password: string;
}

/** One entry of REDIS_CLUSTER_NODES, or why it is refused (never quoting its credentials). */
function clusterEntry(entry: string): ClusterEntry | string {
  const invalid = `expected ${CLUSTER_ENTRY_FORMS}; got "${shown(entry)}"`;
  if (!SCHEME.test(entry)) {
    const match = HOST_PORT.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) return invalid;
    const host = match[1]!.replace(/^\[|\]$/g, "");
    return { node: { host, port }, scheme: "redis:", username: "", password: "" };
  }
  let url: URL;
  let username: string;
  let password: string;
  try {
    url = new URL(entry);
    username = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    return invalid;
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") return invalid;
  if (!url.hostname) return invalid;
  // A cluster has only database 0, and ?options that REDIS_URL honours would be ignored here.
  if (!["", "/", "/0"].includes(url.pathname) || url.search || url.hash)
    return `a cluster node URL has no database number or ?options; got "${shown(entry)}"`;
  // As for REDIS_URL, a URL without a port means Redis's own.
  const port = url.port === "" ? 6379 : Number(url.port);
  if (port < 1) return invalid;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return { node: { host, port }, scheme: url.protocol, username, password };
}

const clusterNodes = z.string().transform((value, ctx): RedisCluster => {
  const entries: ClusterEntry[] = [];
  for (const raw of value.split(",").map((e) => e.trim())) {
    const entry = clusterEntry(raw);
    if (typeof entry === "string") {
      ctx.addIssue({ code: "custom", message: entry });
      return z.NEVER;
    }
    // Credentials and TLS are the cluster's, not a seed's: ioredis applies one set to every node
    // it discovers, so seeds that disagree could only mean a mistake.
    const first = entries[0];
    const differs =
      first &&
      (["scheme", "username", "password"] as const).find((field) => entry[field] !== first[field]);
    if (differs) {
      const what = { scheme: "scheme", username: "user", password: "password" }[differs];
      ctx.addIssue({
        code: "custom",
        message: `every entry needs the same scheme, user and password; "${shown(raw)}" differs from the first in its ${what}`,
      });
      return z.NEVER;
    }
    entries.push(entry);
  }
  const { scheme, username, password } = entries[0]!;
  return {
    nodes: entries.map((e) => e.node),
    tls: scheme === "rediss:",
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
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
  /**
   * Seeds of a Redis Cluster, which then replaces REDIS_URL: `host:port,…`, or URLs as REDIS_URL
   * writes them, `redis://[user:password@]host:port,…` (`rediss://` for TLS), all with the same
   * scheme and credentials. They apply to every node the client discovers.
   */
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
