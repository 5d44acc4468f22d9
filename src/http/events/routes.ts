import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { EVENT_TYPES, type EventType } from "../../db/schema/index.ts";
import { decodeFeedCursor, FROM_THE_START } from "../../events/feed-cursor.ts";
import { listEvents } from "../../events/list-events.ts";
import type { AppEnv } from "../context.ts";
import { render, send } from "../respond.ts";
import { jsonResponse, problems, V1_CODES } from "../responses.ts";
import { cursorParam, Timestamp, UserAccountId, Uuid } from "../schemas.ts";

const EventSchema = z
  .object({
    id: Uuid,
    type: z.enum(EVENT_TYPES),
    accountId: z.string(),
    sequence: z.number().int().min(1).openapi({
      description: "the account's own event counter: 1, 2, 3, … with no gaps",
    }),
    createdAt: Timestamp,
    data: z.unknown().openapi({
      description: "the resource as the API rendered it after the change (its response body)",
    }),
  })
  .openapi("Event", {
    example: {
      id: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f60",
      type: "hold.released",
      accountId: "alice",
      sequence: 3,
      createdAt: "2026-11-23T18:06:00.000Z",
      data: {
        id: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50",
        accountId: "alice",
        amount: 20,
        status: "released",
        settledAmount: null,
        refundedAmount: 0,
        orderId: "42",
        description: null,
        metadata: null,
        reason: "out of stock",
        expiresAt: "2026-11-23T18:20:00.000Z",
        createdAt: "2026-11-23T18:05:00.000Z",
        resolvedAt: "2026-11-23T18:06:00.000Z",
      },
    },
  });

const EventPage = z
  .object({
    data: z.array(EventSchema),
    nextCursor: z.string().openapi({
      description: "always given: pass it as `after` to get what follows, now or later",
    }),
  })
  .openapi("EventPage");

const isEventType = (t: string): t is EventType => (EVENT_TYPES as readonly string[]).includes(t);

const EventQuery = z.strictObject({
  after: cursorParam(decodeFeedCursor),
  limit: z.coerce.number().int().min(1).max(500).default(100).openapi({ example: 100 }),
  type: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const types = value.split(",");
      const unknown = types.find((t) => !isEventType(t));
      if (unknown !== undefined) {
        ctx.addIssue({ code: "custom", message: `unknown event type ${unknown}` });
        return z.NEVER;
      }
      return types.filter(isEventType);
    })
    .openapi({
      type: "string",
      description: `one type or several, comma-separated: ${EVENT_TYPES.join(", ")}`,
      example: "hold.settled,hold.refunded",
    }),
  accountId: UserAccountId.optional(),
});

const list = createRoute({
  operationId: "listEvents",
  method: "get",
  path: "/v1/events",
  tags: ["events"],
  security: [{ bearer: [] }],
  summary: "Follow every committed state change, with a cursor that never skips one",
  request: { query: EventQuery },
  responses: {
    200: jsonResponse(EventPage, "A page of events, and the cursor to follow"),
    ...problems([...V1_CODES]),
  },
});

export const eventRoutes = new OpenAPIHono<AppEnv>().openapi(list, async (c) => {
  const { after, limit, type, accountId } = c.req.valid("query");
  const page = await listEvents(c.get("deps").db, {
    after: after ?? FROM_THE_START,
    limit,
    types: type,
    accountId,
  });
  return send(c, render(200, page));
});
