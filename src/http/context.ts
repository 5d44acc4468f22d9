import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import type { Logger } from "../logger.ts";
import type { RedisClient } from "../process/connections.ts";
import type { Hold } from "../reservations/hold.ts";
import type { WritePath } from "./write-path.ts";

export type Role = "admin" | "service";

/** What the HTTP layer needs from the process: handed in, never imported as globals. */
export interface AppDeps {
  db: Database;
  redis: RedisClient;
  env: Pick<
    Env,
    | "HOLDFAST_ADMIN_TOKEN"
    | "HOLDFAST_SERVICE_TOKEN"
    | "HOLDFAST_SWEEP_INTERVAL_MS"
    | "HOLDFAST_BATCH_WINDOW_MS"
    | "HOLDFAST_BATCH_MAX"
    | "HOLDFAST_QUEUE_PREFIX"
  >;
  logger: Logger;
  /** Enqueues a new hold's jobs (expire, fulfil); absent when no queue is wired in. */
  holdPlaced?: (hold: Hold) => Promise<void>;
}

export interface AppEnv {
  Variables: {
    role: Role;
    requestId: string;
    deps: AppDeps;
    writes: WritePath;
  };
}
