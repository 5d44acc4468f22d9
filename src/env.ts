import { z } from "zod";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.url().optional());

export const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  DATABASE_URL: z.url().default("postgres://127.0.0.1:5432/holdfast"),
  REDIS_URL: z.url().default("redis://127.0.0.1:6379"),
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
  LOG_LEVEL: LogLevel.default("info"),
});

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
  return { env, warnings };
}
