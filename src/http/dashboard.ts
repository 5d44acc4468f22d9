import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Queue } from "bullmq";
import type { Mount } from "./app.ts";
import { authenticate, requireAdmin } from "./auth.ts";

export const DASHBOARD_PATH = "/admin/queues";

/**
 * The BullMQ dashboard (bull-board) at /admin/queues, for the admin only: the admin bearer
 * token, or HTTP Basic with user `admin` and the admin token as password, so that a browser
 * can open it. The guard covers the page, its static files and the JSON API the page calls;
 * a browser resends the Basic credentials to every path under /admin/ on its own.
 */
export function dashboard(queues: Queue[]): Mount {
  return (app) => {
    const serverAdapter = new HonoAdapter(serveStatic).setBasePath(DASHBOARD_PATH);
    createBullBoard({
      queues: queues.map((queue) => new BullMQAdapter(queue)),
      serverAdapter,
      options: { uiConfig: { boardTitle: "holdfast", hideDocsLink: true } },
    });
    const guard = [authenticate({ basic: true }), requireAdmin] as const;
    app.use(DASHBOARD_PATH, ...guard);
    app.use(`${DASHBOARD_PATH}/*`, ...guard);
    app.route(DASHBOARD_PATH, serverAdapter.registerPlugin());
  };
}
