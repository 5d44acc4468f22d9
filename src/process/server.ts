import { type ServerType, serve } from "@hono/node-server";
import type { Env } from "../env.ts";
import { createApp, type Mount } from "../http/app.ts";
import type { AppDeps } from "../http/context.ts";

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves the API on env.PORT (0: any free port). Expired idempotency keys are purged by the
 * workers' sweep, so the API process runs no timers of its own.
 */
export async function startServer(
  deps: Omit<AppDeps, "env"> & { env: Env },
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

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive sockets would hold close() open.
        (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      }),
  };
}
