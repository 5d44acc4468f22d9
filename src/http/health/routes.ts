import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { registry } from "../../metrics.ts";
import type { AppEnv } from "../context.ts";
import { problem } from "../problem.ts";
import { render, send } from "../respond.ts";
import { jsonResponse, problems } from "../schemas.ts";

const READY_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function probe(check: () => Promise<unknown>, what: string): Promise<"ok" | "down"> {
  try {
    await withTimeout(check(), what);
    return "ok";
  } catch {
    return "down";
  }
}

const Status = z.object({ status: z.literal("ok") }).openapi("Health");
const Ready = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    postgres: z.enum(["ok", "down"]),
    redis: z.enum(["ok", "down"]),
  })
  .openapi("Readiness");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "The process is up",
  responses: { 200: jsonResponse(Status, "Up") },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "Postgres and Redis are reachable",
  responses: {
    200: jsonResponse(Ready, "Ready"),
    ...problems(503),
  },
});

export const healthRoutes = new OpenAPIHono<AppEnv>()
  .openapi(healthz, (c) => c.json({ status: "ok" as const }, 200))
  .openapi(readyz, async (c) => {
    const { db, redis, env } = c.get("deps");
    const [postgres, redisState] = await Promise.all([
      probe(() => db.execute(sql`SELECT 1`), "postgres"),
      // A key under the queue prefix, not PING: on a cluster PING answers from any node, while
      // this is routed to the master of the queues' hash slot, the node every enqueue needs.
      probe(() => redis.exists(`${env.HOLDFAST_QUEUE_PREFIX}:ready-probe`), "redis"),
    ]);
    if (postgres === "ok" && redisState === "ok") {
      return c.json({ status: "ok" as const, postgres, redis: redisState }, 200);
    }
    const down = [postgres === "down" && "postgres", redisState === "down" && "redis"].filter(
      Boolean,
    );
    const body = {
      ...problem("unavailable", `unreachable: ${down.join(", ")}`, c.get("requestId")),
      postgres,
      redis: redisState,
    };
    return send(c, render(503, body));
  })
  .get("/metrics", async (c) =>
    c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType }),
  );
