import { Redis, type RedisOptions } from "ioredis";
import postgres from "postgres";

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

/**
 * Connects a Redis client or fails with one line naming the URL. Clients used by request
 * handlers fail fast while Redis is down (no offline queue, one retry) so a request never
 * hangs on it; BullMQ worker connections pass `maxRetriesPerRequest: null` as BullMQ requires.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    ...options,
  });
  // ioredis reports the cause (ECONNREFUSED, …) as an event and rejects with "Connection is
  // closed."; the event says more.
  let cause: Error | undefined;
  redis.on("error", (error: Error) => {
    cause ??= error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const reason = (cause ?? (error as Error)).message;
    throw new StartupError(`cannot reach Redis at ${redact(url)} (${reason})`);
  }
  return redis;
}

/**
 * BullMQ needs `maxmemory-policy noeviction`: an evicting Redis drops jobs silently. The sweep
 * would rebuild them from Postgres, but late, so this is worth a warning at start. Managed
 * Redis services may refuse CONFIG; then nothing can be said.
 */
export async function redisEvictionWarning(redis: Redis): Promise<string | undefined> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    const policy = reply[1];
    return policy && policy !== "noeviction"
      ? `Redis maxmemory-policy is ${policy}: BullMQ needs noeviction, or jobs can be evicted (see README, Production notes)`
      : undefined;
  } catch {
    return undefined;
  }
}
