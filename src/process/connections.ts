import type { ConnectionOptions } from "node:tls";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import postgres from "postgres";
import type { Env, RedisNode } from "../env.ts";

/** A URL safe to print: the password is replaced. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}

export class StartupError extends Error {}

export async function checkPostgres(url: string): Promise<void> {
  // fetch_types: false, as in createDb: a connection lost while postgres.js reads the array
  // types is an unhandled rejection, where this must fail with one line.
  const sql = postgres(url, { max: 1, connect_timeout: 5, fetch_types: false, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
  } catch (error) {
    const reason = (error as { code?: string; message?: string }).code ?? (error as Error).message;
    throw new StartupError(`cannot reach Postgres at ${redact(url)} (${reason})`);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** Every Redis client of the process is one of these: one node, or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** A Redis Cluster by its seed nodes, and how every node of it is reached. */
export interface ClusterTarget {
  clusterNodes: readonly RedisNode[];
  username?: string;
  password?: string;
  /** TLS to every node: true for `rediss://` (Node's CAs), or Node's TLS options (a test CA). */
  tls?: boolean | ConnectionOptions;
}

/** Where Redis is: one node by URL (REDIS_URL), or a cluster by its seed nodes. */
export type RedisTarget = string | ClusterTarget;

/** REDIS_CLUSTER_NODES when set, else REDIS_URL: the one place that chooses between them. */
export function redisTarget(env: Pick<Env, "REDIS_URL" | "REDIS_CLUSTER_NODES">): RedisTarget {
  const cluster = env.REDIS_CLUSTER_NODES;
  if (!cluster) return env.REDIS_URL;
  const { nodes, ...access } = cluster;
  return { clusterNodes: nodes, ...access };
}

/**
 * `Redis at <url>` or `Redis Cluster at <host:port,…>`, safe to print: a cluster with TLS or
 * credentials is shown in URL form, its password replaced.
 */
export function describeRedis(target: RedisTarget): string {
  if (typeof target === "string") return `Redis at ${redact(target)}`;
  const { username, password, tls } = target;
  const user = username ? encodeURIComponent(username) : "";
  const userinfo = user || password ? `${user}${password ? ":***" : ""}@` : "";
  const prefix = tls || userinfo ? `redis${tls ? "s" : ""}://${userinfo}` : "";
  const nodes = target.clusterNodes.map(
    ({ host, port }) => `${prefix}${host.includes(":") ? `[${host}]` : host}:${port}`,
  );
  return `Redis Cluster at ${nodes.join(",")}`;
}

/** What every connection to a node of the cluster needs: credentials and TLS. */
function nodeAccess(target: ClusterTarget): Pick<RedisOptions, "username" | "password" | "tls"> {
  const { username, password, tls } = target;
  return {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(tls ? { tls: tls === true ? {} : tls } : {}),
  };
}

/** How a client behaves while Redis is down or slow; the same meaning for a node or a cluster. */
export interface ConnectOptions {
  /** Queue commands while disconnected (BullMQ workers) instead of failing them at once. */
  enableOfflineQueue?: boolean;
  /** null: retry for ever, as BullMQ requires of worker connections. */
  maxRetriesPerRequest?: number | null;
  commandTimeout?: number;
  connectTimeout?: number;
}

const CONNECT_TIMEOUT_MS = 5000;

const sameName = (
  hostname: string,
  callback: (error: NodeJS.ErrnoException | null, address: string, family?: number) => void,
) => callback(null, hostname);

/**
 * Connects a Redis client, to one node or to a cluster, or fails with one line naming what it
 * tried. Clients used by request handlers fail fast while Redis is down (no offline queue, one
 * retry) so a request never hangs on it; BullMQ worker connections pass
 * `maxRetriesPerRequest: null` as BullMQ requires.
 */
export async function connectRedis(url: string, options?: ConnectOptions): Promise<Redis>;
export async function connectRedis(
  target: RedisTarget,
  options?: ConnectOptions,
): Promise<RedisClient>;
export async function connectRedis(
  target: RedisTarget,
  options: ConnectOptions = {},
): Promise<RedisClient> {
  const {
    enableOfflineQueue = false,
    maxRetriesPerRequest = 1,
    connectTimeout = CONNECT_TIMEOUT_MS,
    commandTimeout,
  } = options;
  const perNode = { connectTimeout, maxRetriesPerRequest, commandTimeout };
  const redis: RedisClient =
    typeof target === "string"
      ? new Redis(target, { lazyConnect: true, enableOfflineQueue, ...perNode })
      : new Cluster(
          target.clusterNodes.map(({ host, port }) => ({ host, port })),
          // A cluster client holds one connection per node and forces their offline queues on;
          // whether a command waits while the cluster is unreachable is the cluster's option.
          // BullMQ reads maxRetriesPerRequest from redisOptions for a Cluster. Credentials and
          // TLS go to redisOptions too: they apply to every node the client discovers.
          {
            lazyConnect: true,
            enableOfflineQueue,
            redisOptions: { ...perNode, ...nodeAccess(target) },
            // ioredis resolves a seed's hostname and connects to the IP, against which the
            // certificate would be checked; with TLS it connects by the name as written.
            ...(target.tls ? { dnsLookup: sameName } : {}),
          },
        );
  // ioredis reports the cause (ECONNREFUSED, …) as an event and rejects with "Connection is
  // closed." or, for a cluster, "None of startup nodes is available"; the event says more. A
  // cluster reports each node's own error as "node error", before its summary "error".
  let cause: Error | undefined;
  redis.on("node error", (error: Error) => {
    cause ??= error;
  });
  redis.on("error", (error: Error) => {
    cause ??= error;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    // A cluster whose state is `fail` never settles connect(): it retries its ready check. The
    // extra second lets a node's own connect timeout, which says more, come first.
    const deadlineMs = connectTimeout + 1000;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${deadlineMs} ms`)), deadlineMs);
    });
    await Promise.race([redis.connect().then(() => redis.ping()), deadline]);
  } catch (error) {
    redis.disconnect();
    const seedError =
      typeof target === "string" ? undefined : await seedsError(target, connectTimeout);
    const reason = (seedError ?? cause ?? (error as Error)).message;
    throw new StartupError(`cannot reach ${describeRedis(target)} (${reason})`);
  } finally {
    clearTimeout(timer);
  }
  return redis;
}

/**
 * Why a cluster's seed nodes could not be used, from the first that fails a plain connection:
 * the cluster client only says "Connection is closed." for a refused connection.
 */
async function seedsError(
  target: ClusterTarget,
  connectTimeout: number,
): Promise<Error | undefined> {
  for (const { host, port } of target.clusterNodes) {
    const seed = new Redis({
      host,
      port,
      ...nodeAccess(target),
      lazyConnect: true,
      connectTimeout,
      retryStrategy: () => null,
    });
    let failure: Error | undefined;
    seed.on("error", (error: Error) => {
      failure ??= error;
    });
    try {
      await seed.connect();
      const state = /cluster_state:\w+/.exec((await seed.cluster("INFO")) as string)?.[0];
      if (state !== "cluster_state:ok")
        return new Error(`${host}:${port} reports ${state ?? "no cluster_state"}`);
    } catch (error) {
      return failure ?? (error as Error);
    } finally {
      seed.disconnect();
    }
  }
  return undefined;
}

/**
 * BullMQ needs `maxmemory-policy noeviction`: an evicting Redis drops jobs silently. The sweep
 * would rebuild them from Postgres, but late, so this is worth a warning at start. On a
 * cluster every master is asked, as any of them may come to own the queues' slot. Managed
 * Redis services may refuse CONFIG; then nothing can be said.
 */
export async function redisEvictionWarning(redis: RedisClient): Promise<string | undefined> {
  const nodes = redis instanceof Cluster ? redis.nodes("master") : [redis];
  for (const node of nodes) {
    let policy: string | undefined;
    try {
      policy = ((await node.config("GET", "maxmemory-policy")) as string[])[1];
    } catch {
      continue;
    }
    if (policy && policy !== "noeviction") {
      const where =
        redis instanceof Cluster ? ` on master ${node.options.host}:${node.options.port}` : "";
      return `Redis maxmemory-policy is ${policy}${where}: BullMQ needs noeviction, or jobs can be evicted (see README, Production notes)`;
    }
  }
  return undefined;
}
