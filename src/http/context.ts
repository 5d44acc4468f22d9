import type { Queue } from "bullmq";
import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import type { Logger } from "../logger.ts";
import type { RedisClient } from "../process/connections.ts";
import type { Hold } from "../reservations/hold.ts";
import type { WritePath } from "../writes/write-path.ts";

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
  > &
    Partial<Pick<Env, "HOLDFAST_READY_STRICT">>;
  logger: Logger;
  /** Enqueues a new hold's jobs (expire, fulfil); absent when no queue is wired in. */
  holdPlaced?: (hold: Hold) => Promise<void>;
  /** Removes the expire job of a hold that was settled or released; absent without a queue. */
  holdResolved?: (holdId: string) => Promise<void>;
  /** The hold queues, for /readyz to see a paused expiry; absent when no queue is wired in. */
  queues?: Queue[];
}

export interface AppEnv {
  Variables: {
    role: Role;
    /** Who the ops credential's user said they are, for the audit log of write actions. */
    operator: string;
    /** Set by secureHeaders' NONCE: the holds panel's <style> carries it. */
    secureHeadersNonce?: string;
    requestId: string;
    deps: AppDeps;
    writes: WritePath;
  };
}
