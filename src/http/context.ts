import type { Redis } from "ioredis";
import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import type { Logger } from "../logger.ts";

export type Role = "admin" | "service";

/** What the HTTP layer needs from the process: handed in, never imported as globals. */
export interface AppDeps {
  db: Database;
  redis: Redis;
  env: Pick<Env, "HOLDFAST_ADMIN_TOKEN" | "HOLDFAST_SERVICE_TOKEN" | "HOLDFAST_SWEEP_INTERVAL_MS">;
  logger: Logger;
}

export interface AppEnv {
  Variables: {
    role: Role;
    requestId: string;
    deps: AppDeps;
  };
}
