import { randomUUID } from "node:crypto";
import type { Env } from "../../src/env.ts";
import { createApp, type Mount } from "../../src/http/app.ts";
import type { AppDeps } from "../../src/http/context.ts";
import { createLogger } from "../../src/logger.ts";
import { connectRedis, type RedisClient, type RedisTarget } from "../../src/process/connections.ts";
import { checkResponses } from "./contract.ts";
import { createTestDatabase, type TestDatabase } from "./db.ts";
import { REDIS_URL } from "./urls.ts";

export const ADMIN = "test-admin-token-0123456789";
export const SERVICE = "test-service-token-0123456789";

export interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** A raw body, sent as is (for malformed JSON and size tests). */
  raw?: string;
  key?: string;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary response fields
  json: any;
}

export interface TestApp {
  db: TestDatabase;
  redis: RedisClient;
  app: ReturnType<typeof createApp>;
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  close(): Promise<void>;
}

export const testEnv = (): Env =>
  ({
    NODE_ENV: "test",
    DATABASE_URL: "postgres://unused",
    REDIS_URL,
    PORT: 0,
    HOLDFAST_ADMIN_TOKEN: ADMIN,
    HOLDFAST_SERVICE_TOKEN: SERVICE,
    HOLDFAST_SWEEP_INTERVAL_MS: 30_000,
    HOLDFAST_DB_POOL_MAX: 20,
    HOLDFAST_BATCH_WINDOW_MS: 1,
    HOLDFAST_BATCH_MAX: 64,
    HOLDFAST_QUEUE_PREFIX: `{hf-test-${randomUUID()}}`,
    LOG_LEVEL: "silent",
  }) as Env;

/**
 * The real app on a private database, called in-process through app.request(), whose every
 * response is checked against the served OpenAPI document (contract.ts).
 */
export async function createTestApp(
  options: {
    mounts?: Mount[];
    db?: TestDatabase;
    holdPlaced?: AppDeps["holdPlaced"];
    holdResolved?: AppDeps["holdResolved"];
    /** A Redis Cluster (or another node) instead of the shared test Redis. */
    redis?: RedisTarget;
    env?: Partial<Env>;
  } = {},
): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase());
  const redis = await connectRedis(options.redis ?? REDIS_URL);
  const env = { ...testEnv(), ...options.env };
  const app = createApp(
    {
      db: db.db,
      redis,
      env,
      logger: createLogger("silent"),
      holdPlaced: options.holdPlaced,
      holdResolved: options.holdResolved,
    },
    options.mounts ?? [],
  );
  checkResponses(app);
  return {
    db,
    redis,
    app,
    async call(method, path, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const token = opts.token === undefined ? ADMIN : opts.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (opts.key !== undefined) headers["idempotency-key"] = opts.key;
      let body: string | undefined;
      if (opts.raw !== undefined) body = opts.raw;
      else if (opts.body !== undefined) body = JSON.stringify(opts.body);
      if (body !== undefined && !("content-type" in headers))
        headers["content-type"] = "application/json";
      const res = await app.request(path, { method, headers, body });
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
    async close() {
      redis.disconnect();
      if (!options.db) await db.drop();
    },
  };
}
