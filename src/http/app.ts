import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { isUnavailable } from "../db/errors.ts";
import { isDomainError } from "../ledger/errors.ts";
import { httpDuration } from "../metrics.ts";
import { createWritePath } from "../writes/write-path.ts";
import { accountRoutes } from "./accounts/routes.ts";
import { authenticate } from "./auth.ts";
import { limitBody } from "./body-limit.ts";
import type { AppDeps, AppEnv } from "./context.ts";
import { serveDocs } from "./docs.ts";
import { eventRoutes } from "./events/routes.ts";
import { healthRoutes } from "./health/routes.ts";
import { holdRoutes } from "./holds/routes.ts";
import { stringify } from "./json.ts";
import { HttpError, PROBLEM_CONTENT_TYPE, type Problem, problem } from "./problem.ts";
import { promotionRoutes } from "./promotions/routes.ts";
import { HEADERS } from "./responses.ts";
import { webhookRoutes } from "./webhooks/routes.ts";

export const MAX_BODY_BYTES = 64 * 1024;

const DESCRIPTION = [
  "Escrow ledger for in-app coins. Errors are RFC 9457 problem+json; `code` is the contract.",
  "Every response carries `X-Request-Id` and `X-Content-Type-Options: nosniff`. A path not",
  "listed here answers 404 `not_found`, and a method a listed path does not take answers 405",
  "`method_not_allowed` with an `Allow` header; under /v1/, 413 `payload_too_large` for a",
  "body over 64 KiB and 401 `unauthorized` without a valid token come first.",
].join(" ");

/** No public licence: an SPDX LicenseRef (OpenAPI 3.1 `identifier`) names it without a URL. */
const LICENSE = { name: "Proprietary", identifier: "LicenseRef-Proprietary" };

/** Routers mounted under the app; later resources (holds, promotions, dashboard) join here. */
export type Mount = (app: OpenAPIHono<AppEnv>) => void;

function sendProblem(c: Context<AppEnv>, p: Problem, headers: Record<string, string> = {}) {
  return c.body(stringify(p), p.status as 400, {
    ...headers,
    "Content-Type": PROBLEM_CONTENT_TYPE,
  });
}

function problemFor(error: Error, c: Context<AppEnv>): Problem {
  const id = c.get("requestId") ?? "unknown";
  if (error instanceof HttpError) return problem(error.code, error.message, id, error.errors);
  if (isDomainError(error)) return problem(error.code, error.message, id);
  if (error instanceof HTTPException) {
    if (error.status === 413)
      return problem(
        "payload_too_large",
        `request bodies are limited to ${MAX_BODY_BYTES} bytes`,
        id,
      );
    if (error.status === 415)
      return problem("invalid_request", "the body must be application/json", id);
    if (error.status === 404) return problem("not_found", "no such resource", id);
    if (error.status < 500) return problem("invalid_request", error.message, id);
  }
  const logger = c.get("deps").logger;
  if (isUnavailable(error)) {
    logger.warn({ err: error, requestId: id }, "dependency unavailable");
    return problem(
      "unavailable",
      "a dependency is unavailable; retry with the same Idempotency-Key",
      id,
    );
  }
  logger.error({ err: error, requestId: id, path: c.req.path }, "unhandled error");
  return problem(
    "internal_error",
    "internal error; nothing was committed unless a retry says so",
    id,
  );
}

export function createApp(deps: AppDeps, mounts: Mount[] = []): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (result.success) return;
      const errors = result.error.issues.map((issue) => ({
        field:
          issue.code === "unrecognized_keys"
            ? issue.keys.join(", ")
            : issue.path.length > 0
              ? issue.path.join(".")
              : result.target,
        message: issue.message,
      }));
      throw new HttpError(
        "invalid_request",
        `invalid ${result.target === "json" ? "body" : result.target}`,
        errors,
      );
    },
  });

  const writes = createWritePath(deps.db, {
    windowMs: deps.env.HOLDFAST_BATCH_WINDOW_MS,
    maxSize: deps.env.HOLDFAST_BATCH_MAX,
  });
  app.use("*", requestId());
  // X-Content-Type-Options: nosniff on every response, with hono's other defaults.
  app.use("*", secureHeaders());
  app.use(
    "*",
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        sendProblem(
          c,
          problem(
            "method_not_allowed",
            `${c.req.method} is not allowed on ${c.req.path}`,
            c.get("requestId"),
          ),
          { Allow: methods.join(", ") },
        ),
    }),
  );
  app.use("*", async (c, next) => {
    c.set("deps", deps);
    c.set("writes", writes);
    const started = performance.now();
    await next();
    httpDuration.observe(
      { method: c.req.method, route: c.req.routePath, status: String(c.res.status) },
      (performance.now() - started) / 1000,
    );
  });
  app.use(
    "/v1/*",
    limitBody(MAX_BODY_BYTES, () => {
      throw new HttpError(
        "payload_too_large",
        `request bodies are limited to ${MAX_BODY_BYTES} bytes`,
      );
    }),
  );
  app.use("/v1/*", authenticate());

  app.route("/", healthRoutes);
  app.route("/", accountRoutes);
  app.route("/", holdRoutes);
  app.route("/", promotionRoutes);
  app.route("/", eventRoutes);
  app.route("/", webhookRoutes);
  for (const mount of mounts) mount(app);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });
  for (const [name, header] of Object.entries(HEADERS)) {
    app.openAPIRegistry.registerComponent("headers", name, header);
  }
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "holdfast",
      version: "1.0.0",
      description: DESCRIPTION,
      license: LICENSE,
    },
    servers: [{ url: "/", description: "the server that serves this document" }],
  });
  serveDocs(app);

  app.notFound((c) =>
    sendProblem(
      c,
      problem("not_found", `no route for ${c.req.method} ${c.req.path}`, c.get("requestId")),
    ),
  );
  app.onError((error, c) => sendProblem(c, problemFor(error, c)));
  return app;
}
