import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Queue } from "bullmq";
import { sql } from "drizzle-orm";
import { registry } from "../../metrics.ts";
import { pausedExpiryQueues } from "../../workers/paused-queues.ts";
import type { AppEnv } from "../context.ts";
import { problem } from "../problem.ts";
import { render, send } from "../respond.ts";
import { jsonResponse, problems } from "../responses.ts";

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

/** The paused queues that stop expiry; none when there are no queues or Redis cannot say. */
async function expiryPaused(queues: Queue[] | undefined): Promise<string[]> {
  if (!queues) return [];
  try {
    return await withTimeout(pausedExpiryQueues(queues), "redis");
  } catch {
    return [];
  }
}

const Status = z.object({ status: z.literal("ok") }).openapi("Health");
const Ready = z
  .object({
    status: z.enum(["ok", "degraded", "unavailable"]),
    postgres: z.enum(["ok", "down"]),
    redis: z.enum(["ok", "down"]),
    /** With status degraded: the paused queues that stop expiry (holds-expire, holds-sweep). */
    paused: z.array(z.string()).optional(),
  })
  .openapi("Readiness");

const healthz = createRoute({
  operationId: "getHealth",
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  security: [],
  summary: "The process is up",
  responses: { 200: jsonResponse(Status, "Up") },
});

const readyz = createRoute({
  operationId: "getReadiness",
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  security: [],
  summary: "Postgres and Redis are reachable; degraded while expiry is paused",
  responses: {
    200: jsonResponse(Ready, "Ready"),
    ...problems(["unavailable"]),
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
      const paused = await expiryPaused(c.get("deps").queues);
      if (paused.length === 0)
        return c.json({ status: "ok" as const, postgres, redis: redisState }, 200);
      // Up, but holds stop expiring: a probe that restarts or drains on 503 cannot fix a
      // paused queue, so only HOLDFAST_READY_STRICT=1 turns this into a 503.
      if (!env.HOLDFAST_READY_STRICT)
        return c.json({ status: "degraded" as const, postgres, redis: redisState, paused }, 200);
      const body = {
        ...problem("unavailable", `expiry is paused: ${paused.join(", ")}`, c.get("requestId")),
        postgres,
        redis: redisState,
        paused,
      };
      return send(c, render(503, body));
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
