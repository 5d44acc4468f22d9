import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { EVENT_TYPES } from "../../db/schema/index.ts";
import { feedsOf } from "../../events/feeds.ts";
import { DomainError } from "../../ledger/errors.ts";
import {
  createEndpoint,
  deleteEndpoint,
  listAttempts,
  listEndpoints,
  rotateSecret,
} from "../../webhooks/endpoints.ts";
import { requireAdmin } from "../auth.ts";
import type { AppEnv } from "../context.ts";
import { idempotent } from "../idempotency.ts";
import { render, send } from "../respond.ts";
import { IDEMPOTENT_CODES, jsonResponse, noContent, problems, V1_CODES } from "../responses.ts";
import { IdempotencyHeader, jsonBody, Timestamp, Uuid } from "../schemas.ts";

const Url = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .openapi({ example: "https://orders.example.com/holdfast-events" });
const Types = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .max(EVENT_TYPES.length)
  .nullable()
  .openapi({ description: "the event types it receives; null or absent: all" });

const ENDPOINT = {
  id: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f70",
  url: "https://orders.example.com/holdfast-events",
  types: ["hold.settled", "hold.refunded"],
  createdAt: "2026-11-23T18:00:00.000Z",
};
const Endpoint = z
  .object({ id: Uuid, url: z.string(), types: Types, createdAt: Timestamp })
  .openapi("WebhookEndpoint", { example: ENDPOINT });
const EndpointWithSecret = Endpoint.extend({
  secret: z.string().openapi({ description: "shown only when created or rotated" }),
}).openapi("WebhookEndpointWithSecret", {
  example: { ...ENDPOINT, secret: "whsec_3q2-7wE…" },
});
const Attempt = z
  .object({
    eventId: Uuid,
    type: z.enum(EVENT_TYPES),
    accountId: z.string(),
    sequence: z.number().int(),
    attempt: z.number().int().openapi({ description: "1 for the first try of this event" }),
    statusCode: z.number().int().nullable().openapi({ description: "null: no HTTP answer" }),
    latencyMs: z.number().int(),
    error: z.string().nullable(),
    attemptedAt: Timestamp,
  })
  .openapi("WebhookAttempt");

const CreateBody = z.strictObject({ url: Url, types: Types.optional() });
const IdParams = z.object({ id: Uuid });
const tags = ["webhooks"];
const security = [{ bearer: [] }];
const ADMIN_CODES = [...V1_CODES, "forbidden"] as const;

const create = createRoute({
  operationId: "createWebhookEndpoint",
  method: "post",
  path: "/v1/webhook-endpoints",
  tags,
  security,
  summary: "Subscribe a URL to the events from now on (admin)",
  middleware: [requireAdmin] as const,
  request: { headers: IdempotencyHeader(false), body: jsonBody(CreateBody) },
  responses: {
    201: jsonResponse(EndpointWithSecret, "The endpoint, with its signing secret", {
      replayable: true,
    }),
    ...problems([...ADMIN_CODES, ...IDEMPOTENT_CODES], { replayable: true }),
  },
});

const list = createRoute({
  operationId: "listWebhookEndpoints",
  method: "get",
  path: "/v1/webhook-endpoints",
  tags,
  security,
  summary: "List the webhook endpoints, without their secrets (admin)",
  middleware: [requireAdmin] as const,
  responses: {
    200: jsonResponse(
      z.object({ data: z.array(Endpoint) }).openapi("WebhookEndpointList"),
      "The endpoints",
    ),
    ...problems(ADMIN_CODES),
  },
});

const remove = createRoute({
  operationId: "deleteWebhookEndpoint",
  method: "delete",
  path: "/v1/webhook-endpoints/{id}",
  tags,
  security,
  summary: "Remove an endpoint; its pending deliveries go with it (admin)",
  middleware: [requireAdmin] as const,
  request: { params: IdParams },
  responses: {
    204: noContent("Removed"),
    ...problems([...ADMIN_CODES, "webhook_endpoint_not_found"]),
  },
});

const rotate = createRoute({
  operationId: "rotateWebhookSecret",
  method: "post",
  path: "/v1/webhook-endpoints/{id}/rotate-secret",
  tags,
  security,
  summary: "Replace the signing secret; the old one also signs for 24 h (admin)",
  middleware: [requireAdmin] as const,
  request: { params: IdParams, headers: IdempotencyHeader(false) },
  responses: {
    200: jsonResponse(EndpointWithSecret, "The endpoint, with its new secret", {
      replayable: true,
    }),
    ...problems([...ADMIN_CODES, ...IDEMPOTENT_CODES, "webhook_endpoint_not_found"], {
      replayable: true,
    }),
  },
});

const deliveries = createRoute({
  operationId: "listWebhookAttempts",
  method: "get",
  path: "/v1/webhook-endpoints/{id}/deliveries",
  tags,
  security,
  summary: "The endpoint's recent delivery attempts, newest first, with status and latency (admin)",
  middleware: [requireAdmin] as const,
  request: {
    params: IdParams,
    query: z.strictObject({
      limit: z.coerce.number().int().min(1).max(500).default(100).openapi({ example: 100 }),
    }),
  },
  responses: {
    200: jsonResponse(
      z.object({ data: z.array(Attempt) }).openapi("WebhookAttemptList"),
      "The attempts",
    ),
    ...problems([...ADMIN_CODES, "webhook_endpoint_not_found"]),
  },
});

const notFound = (id: string) =>
  new DomainError("webhook_endpoint_not_found", `webhook endpoint ${id} does not exist`);

export const webhookRoutes = new OpenAPIHono<AppEnv>()
  .openapi(create, async (c) => {
    const body = c.req.valid("json");
    const on = { scope: "webhook-endpoints", bucket: 0 };
    const feeds = await feedsOf(c.get("deps").db);
    return idempotent(c, { required: false, status: 201, body, ...on }, (tx) =>
      createEndpoint(tx, { url: body.url, types: body.types ?? undefined }, feeds),
    );
  })
  .openapi(list, async (c) => send(c, render(200, { data: await listEndpoints(c.get("deps").db) })))
  .openapi(remove, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await deleteEndpoint(c.get("deps").db, id))) throw notFound(id);
    return c.body(null, 204);
  })
  .openapi(rotate, (c) => {
    const { id } = c.req.valid("param");
    const on = { scope: id.toLowerCase(), bucket: 0 };
    return idempotent(c, { required: false, status: 200, body: {}, ...on }, async (tx) => {
      const rotated = await rotateSecret(tx, id);
      if (!rotated) throw notFound(id);
      return rotated;
    });
  })
  .openapi(deliveries, async (c) => {
    const { id } = c.req.valid("param");
    const { limit } = c.req.valid("query");
    const data = await listAttempts(c.get("deps").db, id, limit);
    if (!data) throw notFound(id);
    return send(c, render(200, { data }));
  });
