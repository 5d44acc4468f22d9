import { type ServerType, serve } from "@hono/node-server";
import type { Redis } from "ioredis";
import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import { createApp, type Mount } from "../http/app.ts";
import { purgeIdempotencyKeys } from "../http/idempotency.ts";
import type { Logger } from "../logger.ts";

const PURGE_EVERY_MS = 15 * 60 * 1000;

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

export async function startServer(
  deps: { db: Database; redis: Redis; env: Env; logger: Logger },
  mounts: Mount[] = [],
): Promise<RunningServer> {
  const app = createApp(deps, mounts);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: deps.env.PORT, hostname: "0.0.0.0" }, () =>
      resolve(s),
    );
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : deps.env.PORT;
  deps.logger.info({ port }, `holdfast API listening on http://127.0.0.1:${port} (docs at /docs)`);

  const purge = setInterval(() => {
    purgeIdempotencyKeys(deps.db)
      .then((n) => n > 0 && deps.logger.info({ purged: n }, "purged expired idempotency keys"))
      .catch((err) => deps.logger.warn({ err }, "idempotency key purge failed"));
  }, PURGE_EVERY_MS);
  purge.unref();

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(purge);
        server.close(() => resolve());
        // Idle keep-alive sockets would hold close() open.
        (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      }),
  };
}
