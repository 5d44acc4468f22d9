import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Queue } from "bullmq";
import type { MiddlewareHandler } from "hono";
import type { Mount } from "./app.ts";
import { adminPage, authenticateOps } from "./auth.ts";
import type { AppEnv } from "./context.ts";
import { A11Y_SCRIPT, A11Y_SCRIPT_PATH, A11Y_STYLE } from "./dashboard-a11y.ts";
import { dashboardHeaders } from "./page-headers.ts";
import { HttpError } from "./problem.ts";

export const DASHBOARD_PATH = "/admin/queues";
export const OPS_DASHBOARD_PATH = "/admin/queues-ops";

const READS = new Set(["GET", "HEAD"]);

/**
 * bull-board's page links IBM Plex from fonts.googleapis.com. The CSP would block it, with a
 * console error on every page; without the link the page uses its fallback fonts and loads
 * nothing from another host.
 */
const EXTERNAL_FONTS = /<link[^>]+href="https:\/\/fonts\.googleapis\.com\/[^"]*"[^>]*>\s*/g;

/** The page without its external fonts, with holdfast's accessibility repairs (dashboard-a11y.ts). */
const pageRepairs =
  (path: string): MiddlewareHandler<AppEnv> =>
  async (c, next) => {
    await next();
    if (!c.res.headers.get("content-type")?.startsWith("text/html")) return;
    const page = (await c.res.text())
      .replace(EXTERNAL_FONTS, "")
      .replace(
        "</head>",
        `${A11Y_STYLE}<script src="${path}/${A11Y_SCRIPT_PATH}" defer></script></head>`,
      );
    c.res = new Response(page, c.res);
  };

const a11yScript = (path: string) => (app: Parameters<Mount>[0]) =>
  app.get(`${path}/${A11Y_SCRIPT_PATH}`, (c) =>
    c.body(A11Y_SCRIPT, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );

/**
 * The read-only mount refuses every write at the door, whatever bull-board's handlers check:
 * readOnlyMode hides the buttons and most handlers refuse, but pause-all and resume-all answer
 * 200 after skipping read-only queues, and a future route could forget the check.
 */
const refuseWrites: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!READS.has(c.req.method))
    throw new HttpError(
      "forbidden",
      `the dashboard is read-only; write actions need HOLDFAST_OPS_TOKEN at ${OPS_DASHBOARD_PATH}`,
    );
  await next();
};

/**
 * Even with the ops token, a completed job is not retried: a retry runs it again and replaces
 * its recorded outcome (`settled, 20` became `skipped`), and the hold it settled stays settled.
 */
function refuseCompletedRetries(queues: Queue[]): MiddlewareHandler<AppEnv> {
  const byName = new Map(queues.map((q) => [q.name, q]));
  const isCompleted = async (queueName: string, jobId: string) => {
    const queue = byName.get(decodeURIComponent(queueName));
    return (
      queue !== undefined && (await queue.getJobState(decodeURIComponent(jobId))) === "completed"
    );
  };
  return async (c, next) => {
    const path = c.req.path.slice(OPS_DASHBOARD_PATH.length);
    const all = /^\/api\/queues\/[^/]+\/retry\/completed$/.test(path);
    const one = /^\/api\/queues\/([^/]+)\/([^/]+)\/retry$/.exec(path);
    if (c.req.method === "PUT" && (all || (one && (await isCompleted(one[1]!, one[2]!)))))
      throw new HttpError(
        "forbidden",
        "completed jobs are not retried: a retry would replace the outcome they recorded",
      );
    await next();
  };
}

/** Logs each write action with who took it and how it ended, after it ran. */
const auditWrites: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (READS.has(c.req.method)) return next();
  const body = (await c.req.text()).slice(0, 1024);
  try {
    await next();
  } finally {
    c.get("deps").logger.warn(
      {
        audit: "dashboard",
        operator: c.get("operator"),
        method: c.req.method,
        path: c.req.path,
        body: body || undefined,
        status: c.res.status,
        requestId: c.get("requestId"),
      },
      `dashboard write by ${c.get("operator")}: ${c.req.method} ${c.req.path}`,
    );
  }
};

/**
 * A job's title in the dashboard: its name, and for a purchase the fulfilment webhook refused,
 * "· REFUSED: <reason>", so that it stands apart from a settle in the list of completed jobs.
 */
export function jobTitle(job: { name?: string; returnvalue?: unknown }): string {
  let result = job.returnvalue;
  if (typeof result === "string") {
    try {
      result = JSON.parse(result);
    } catch {}
  }
  const r = result as { outcome?: unknown; reason?: unknown } | null | undefined;
  const name = job.name ?? "";
  return r?.outcome === "released" ? `${name} · REFUSED: ${String(r.reason)}` : name;
}

function board(queues: Queue[], path: string, readOnlyMode: boolean) {
  const serverAdapter = new HonoAdapter(serveStatic).setBasePath(path);
  const adapters = queues.map((queue) => {
    const adapter = new BullMQAdapter(queue, { readOnlyMode });
    adapter.setFormatter("name", jobTitle);
    return adapter;
  });
  createBullBoard({
    queues: adapters,
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: readOnlyMode ? "holdfast" : "holdfast ops (write actions are logged)",
        hideDocsLink: true,
        miscLinks: [{ text: "Holds panel", url: "/admin/holds" }],
      },
    },
  });
  return serverAdapter.registerPlugin();
}

/**
 * The BullMQ dashboard (bull-board) at /admin/queues, read-only, for the admin: the admin
 * bearer token, or HTTP Basic with user `admin` and the admin token as password, so that a
 * browser can open it. The guard covers the page, its static files and the JSON API the page
 * calls; a browser resends the Basic credentials to every path under /admin/ on its own.
 *
 * With an ops token, the same dashboard with its write actions (retry, promote, pause, clean,
 * …) at /admin/queues-ops, behind HTTP Basic `<your name>:<ops token>`; every write action is
 * logged with that name. Without one there is no such mount: nobody can write.
 */
export function dashboard(queues: Queue[], options: { opsToken?: string | undefined } = {}): Mount {
  return (app) => {
    const guard = [
      dashboardHeaders,
      ...adminPage,
      refuseWrites,
      pageRepairs(DASHBOARD_PATH),
    ] as const;
    app.use(DASHBOARD_PATH, ...guard);
    app.use(`${DASHBOARD_PATH}/*`, ...guard);
    a11yScript(DASHBOARD_PATH)(app);
    app.route(DASHBOARD_PATH, board(queues, DASHBOARD_PATH, true));

    if (!options.opsToken) return;
    const ops = [
      dashboardHeaders,
      authenticateOps(options.opsToken),
      auditWrites,
      refuseCompletedRetries(queues),
      pageRepairs(OPS_DASHBOARD_PATH),
    ] as const;
    app.use(OPS_DASHBOARD_PATH, ...ops);
    app.use(`${OPS_DASHBOARD_PATH}/*`, ...ops);
    a11yScript(OPS_DASHBOARD_PATH)(app);
    app.route(OPS_DASHBOARD_PATH, board(queues, OPS_DASHBOARD_PATH, false));
  };
}
