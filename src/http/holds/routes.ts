import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HOLD_STATUSES } from "../../db/schema/index.ts";
import { decodeCursor } from "../../ledger/cursor.ts";
import { getHold, type Hold } from "../../reservations/hold.ts";
import { listHolds } from "../../reservations/list-holds.ts";
import { listRefunds } from "../../reservations/list-refunds.ts";
import { MAX_HOLD_SECONDS, placeHold, placeHolds } from "../../reservations/place-hold.ts";
import { refundHold, refundHolds } from "../../reservations/refund-hold.ts";
import { releaseHold } from "../../reservations/release-hold.ts";
import { settleHold, settleHolds } from "../../reservations/settle-hold.ts";
import { assertReadable } from "../accounts/routes.ts";
import type { AppEnv } from "../context.ts";
import { idempotentOutcome, onAccount, onHold, REPLAYED } from "../idempotency.ts";
import { type Rendered, render, send } from "../respond.ts";
import { IDEMPOTENT_CODES, jsonResponse, problems, V1_CODES } from "../responses.ts";
import {
  Account,
  Amount,
  AnyAccountId,
  Balance,
  cursorParam,
  IdempotencyHeader,
  jsonBody,
  Metadata,
  PageQuery,
  pageOf,
  Reason,
  Text,
  Timestamp,
  UserAccountId,
  Uuid,
} from "../schemas.ts";

const PENDING_HOLD = {
  id: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50",
  accountId: "alice",
  amount: 20,
  status: "pending",
  settledAmount: null,
  refundedAmount: 0,
  orderId: "42",
  description: null,
  metadata: null,
  reason: null,
  expiresAt: "2026-11-23T18:20:00.000Z",
  createdAt: "2026-11-23T18:05:00.000Z",
  resolvedAt: null,
};
const SETTLED_HOLD = {
  ...PENDING_HOLD,
  status: "settled",
  settledAmount: 20,
  resolvedAt: "2026-11-23T18:06:00.000Z",
};
const RELEASED_HOLD = {
  ...PENDING_HOLD,
  status: "released",
  reason: "out of stock",
  resolvedAt: "2026-11-23T18:06:00.000Z",
};

const HoldSchema = z
  .object({
    id: Uuid,
    accountId: z.string(),
    amount: Amount,
    status: z.enum(HOLD_STATUSES),
    settledAmount: Amount.nullable(),
    refundedAmount: Balance.openapi({
      description: "the sum of the hold's refunds: 0 until refunded, at most settledAmount",
      example: 0,
    }),
    orderId: z.string().nullable(),
    description: z.string().nullable(),
    metadata: Metadata.nullable(),
    reason: z.string().nullable(),
    expiresAt: Timestamp,
    createdAt: Timestamp,
    resolvedAt: Timestamp.nullable(),
  })
  .openapi("Hold", {
    description: "settledAmount is null until the hold settles; only a settled hold is refunded",
    example: PENDING_HOLD,
  });

const PurchaseBody = z.strictObject({
  accountId: UserAccountId,
  amount: Amount,
  orderId: Text(255).optional(),
  description: Text(1000).optional(),
  metadata: Metadata.optional(),
  expiresInSeconds: z
    .number()
    .int()
    .min(1)
    .max(MAX_HOLD_SECONDS)
    .optional()
    .openapi({ example: 900 }),
});
const Purchase = z.object({ hold: HoldSchema, account: Account }).openapi("Purchase");
const SettleBody = z.strictObject({ amount: Amount.optional() });
const ReleaseBody = z.strictObject({ reason: Reason.optional() });
const HoldParams = z.object({ id: Uuid });
const optionalJson = <T extends z.ZodType>(schema: T) => ({
  required: false,
  content: { "application/json": { schema } },
});

/** Holds and refunds are paged by id (UUIDv7, so by creation). */
const idCursor = cursorParam((cursor) => {
  const id = decodeCursor(cursor);
  return id !== undefined && z.uuid().safeParse(id).success ? id : undefined;
});
const HoldListQuery = PageQuery.extend({
  status: z.enum(HOLD_STATUSES).optional(),
  cursor: idCursor,
});
const RefundListQuery = PageQuery.extend({ cursor: idCursor });

const RefundBody = z.strictObject({
  amount: Amount.optional().openapi({ description: "Default: all that is still refundable" }),
  reason: Reason.optional(),
  metadata: Metadata.optional(),
});
const REFUND = {
  id: "019a8f4e-9d20-7c4b-8a11-2f3e4d5c6f50",
  holdId: SETTLED_HOLD.id,
  accountId: "alice",
  amount: 20,
  reason: "customer complaint",
  metadata: null,
  transactionId: "019a8f4e-9d20-7c4b-8a11-2f3e4d5c7f50",
  createdAt: "2026-11-23T19:00:00.000Z",
};
const RefundSchema = z
  .object({
    id: Uuid,
    holdId: Uuid,
    accountId: z.string(),
    amount: Amount,
    reason: z.string().nullable(),
    metadata: Metadata.nullable(),
    transactionId: Uuid,
    createdAt: Timestamp,
  })
  .openapi("Refund", {
    description: "coins given back from @revenue to the hold's account by one refund transaction",
    example: REFUND,
  });
const RefundResult = z
  .object({ refund: RefundSchema, hold: HoldSchema, account: Account })
  .openapi("RefundResult", {
    example: {
      refund: REFUND,
      hold: { ...SETTLED_HOLD, refundedAmount: 20 },
      account: {
        id: "alice",
        settled: 50,
        held: 0,
        available: 50,
        metadata: null,
        createdAt: "2026-11-23T18:00:00.000Z",
      },
    },
  });

const tags = ["holds"];
const security = [{ bearer: [] }];

const purchase = createRoute({
  operationId: "placePurchase",
  method: "post",
  path: "/v1/purchases",
  tags,
  security,
  summary: "Place a hold that reserves coins for a purchase",
  request: { headers: IdempotencyHeader(true), body: jsonBody(PurchaseBody) },
  responses: {
    201: jsonResponse(Purchase, "The pending hold and the account after it", { replayable: true }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "idempotency_key_required",
        "account_not_found",
        "insufficient_funds",
      ],
      { replayable: true },
    ),
  },
});

const get = createRoute({
  operationId: "getHold",
  method: "get",
  path: "/v1/holds/{id}",
  tags,
  security,
  summary: "Read a hold",
  request: { params: HoldParams },
  responses: {
    200: jsonResponse(HoldSchema, "The hold"),
    ...problems([...V1_CODES, "hold_not_found"]),
  },
});

const settle = createRoute({
  operationId: "settleHold",
  method: "post",
  path: "/v1/holds/{id}/settle",
  tags,
  security,
  summary: "Capture a pending hold, fully or partly; the rest is freed",
  request: {
    params: HoldParams,
    headers: IdempotencyHeader(false),
    body: optionalJson(SettleBody),
  },
  responses: {
    200: jsonResponse(HoldSchema, "The settled hold", { replayable: true, example: SETTLED_HOLD }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "hold_not_found",
        "hold_not_pending",
        "amount_exceeds_hold",
      ],
      { replayable: true },
    ),
  },
});

const release = createRoute({
  operationId: "releaseHold",
  method: "post",
  path: "/v1/holds/{id}/release",
  tags,
  security,
  summary: "Void a pending hold; nothing is posted",
  request: {
    params: HoldParams,
    headers: IdempotencyHeader(false),
    body: optionalJson(ReleaseBody),
  },
  responses: {
    200: jsonResponse(HoldSchema, "The released hold", {
      replayable: true,
      example: RELEASED_HOLD,
    }),
    ...problems([...V1_CODES, ...IDEMPOTENT_CODES, "hold_not_found", "hold_not_pending"], {
      replayable: true,
    }),
  },
});

const refund = createRoute({
  operationId: "refundHold",
  method: "post",
  path: "/v1/holds/{id}/refunds",
  tags,
  security,
  summary: "Give back some or all of a settled hold's coins, from @revenue",
  request: {
    params: HoldParams,
    headers: IdempotencyHeader(true),
    body: optionalJson(RefundBody),
  },
  responses: {
    201: jsonResponse(RefundResult, "The refund, with the hold and the account after it", {
      replayable: true,
    }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "idempotency_key_required",
        "hold_not_found",
        "hold_not_settled",
        "refund_exceeds_settled",
        "balance_limit_exceeded",
      ],
      { replayable: true },
    ),
  },
});

const refunds = createRoute({
  operationId: "listRefunds",
  method: "get",
  path: "/v1/holds/{id}/refunds",
  tags,
  security,
  summary: "List a hold's refunds, newest first",
  request: { params: HoldParams, query: RefundListQuery },
  responses: {
    200: jsonResponse(pageOf(RefundSchema, "RefundPage"), "A page of refunds"),
    ...problems([...V1_CODES, "hold_not_found"]),
  },
});

const list = createRoute({
  operationId: "listHolds",
  method: "get",
  path: "/v1/accounts/{id}/holds",
  tags,
  security,
  summary: "List an account's holds, newest first",
  request: { params: z.object({ id: AnyAccountId }), query: HoldListQuery },
  responses: {
    200: jsonResponse(pageOf(HoldSchema, "HoldPage"), "A page of holds"),
    ...problems([...V1_CODES, "forbidden", "account_not_found"]),
  },
});

/** Sends a settle's or release's answer, after removing the hold's expire job when it ended. */
async function resolved(
  c: Context<AppEnv>,
  holdId: string,
  { rendered, replayed }: { rendered: Rendered; replayed: boolean },
) {
  const { holdResolved, logger } = c.get("deps");
  if (rendered.status === 200 && holdResolved) {
    await holdResolved(holdId).catch((err) =>
      logger.warn({ err, holdId }, "could not remove the expire job of a resolved hold"),
    );
  }
  return send(c, rendered, replayed ? REPLAYED : {});
}

export const holdRoutes = new OpenAPIHono<AppEnv>()
  .openapi(purchase, async (c) => {
    const body = c.req.valid("json");
    const { rendered, replayed } = await idempotentOutcome(
      c,
      {
        required: true,
        status: 201,
        body,
        ...onAccount(body.accountId),
        many: { verb: placeHolds, input: body },
      },
      (tx) => placeHold(tx, body),
    );
    const { holdPlaced, logger } = c.get("deps");
    if (rendered.status === 201 && holdPlaced) {
      // After commit, and on replays too: a duplicate enqueue is a no-op, and a replay heals
      // a first attempt whose enqueue failed. If Redis is down the sweep enqueues later.
      const { hold } = JSON.parse(rendered.body) as { hold: Hold };
      await holdPlaced(hold).catch((err) =>
        logger.warn({ err, holdId: hold.id }, "could not enqueue hold jobs; the sweep will"),
      );
    }
    return send(c, rendered, replayed ? REPLAYED : {});
  })
  .openapi(get, async (c) =>
    send(c, render(200, await getHold(c.get("deps").db, c.req.valid("param").id))),
  )
  .openapi(settle, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const input = { holdId: id, amount: body.amount };
    const outcome = await idempotentOutcome(
      c,
      { required: false, status: 200, body, ...onHold(id), many: { verb: settleHolds, input } },
      (tx) => settleHold(tx, input),
    );
    return resolved(c, id, outcome);
  })
  .openapi(release, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { scope, bucket } = onHold(id);
    const outcome = await idempotentOutcome(
      c,
      { required: false, status: 200, body, scope, bucket },
      (tx) => releaseHold(tx, { holdId: id, reason: body.reason }),
    );
    return resolved(c, id, outcome);
  })
  .openapi(refund, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const input = { holdId: id, ...body };
    const { rendered, replayed } = await idempotentOutcome(
      c,
      { required: true, status: 201, body, ...onHold(id), many: { verb: refundHolds, input } },
      (tx) => refundHold(tx, input),
    );
    return send(c, rendered, replayed ? REPLAYED : {});
  })
  .openapi(refunds, async (c) => {
    const { id } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    return send(
      c,
      render(200, await listRefunds(c.get("deps").db, { holdId: id, limit, before: cursor })),
    );
  })
  .openapi(list, async (c) => {
    const { id } = c.req.valid("param");
    const { limit, cursor, status } = c.req.valid("query");
    assertReadable(c.get("role"), id);
    return send(
      c,
      render(
        200,
        await listHolds(c.get("deps").db, { accountId: id, status, limit, before: cursor }),
      ),
    );
  });
