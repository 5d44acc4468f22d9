import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { shardsOf } from "../../db/shards.ts";
import { createPromotion } from "../../ledger/create-promotion.ts";
import { getPromotion } from "../../ledger/get-promotion.ts";
import { bucketOf } from "../../ledger/ids.ts";
import {
  MAX_MULTIPLIER,
  MAX_REDEMPTIONS,
  MIN_MULTIPLIER,
  PROMOTION_CODE,
} from "../../ledger/promotion.ts";
import { redeemPromotion } from "../../ledger/redeem-promotion.ts";
import { requireAdmin } from "../auth.ts";
import type { AppEnv } from "../context.ts";
import { idempotent, onAccount } from "../idempotency.ts";
import { render, send } from "../respond.ts";
import { IDEMPOTENT_CODES, jsonResponse, problems, V1_CODES } from "../responses.ts";
import {
  Account,
  Balance,
  IdempotencyHeader,
  jsonBody,
  Timestamp,
  UserAccountId,
  Uuid,
} from "../schemas.ts";

const PromotionCode = z
  .string()
  .regex(PROMOTION_CODE, "must match ^[A-Z0-9_-]{3,32}$")
  .openapi({ example: "DOUBLE" });

/** Inputs may carry an offset; outputs are always UTC (`…Z`). */
const Instant = z.iso
  .datetime({ offset: true })
  // An offset can carry 0000-01-01 or 9999-12-31 out of years 1–9999 in UTC: Postgres refuses
  // year 0, and a later instant has no ISO 8601 form for the answer.
  .refine((v) => {
    const year = new Date(v).getUTCFullYear();
    return year >= 1 && year <= 9999;
  }, "must fall within years 0001–9999 in UTC")
  .openapi({ example: "2026-12-01T00:00:00Z" });

const PromotionSchema = z
  .object({
    code: PromotionCode,
    multiplier: z.number().int().openapi({ example: 2 }),
    maxRedemptions: z.number().int().nullable().openapi({ description: "null: unlimited" }),
    redemptions: z.number().int().openapi({ example: 0 }),
    startsAt: Timestamp.nullable(),
    endsAt: Timestamp.nullable().openapi({ description: "exclusive" }),
    createdAt: Timestamp,
  })
  .openapi("Promotion", {
    example: {
      code: "DOUBLE",
      multiplier: 2,
      maxRedemptions: null,
      redemptions: 0,
      startsAt: null,
      endsAt: "2026-12-01T00:00:00.000Z",
      createdAt: "2026-11-23T18:00:00.000Z",
    },
  });

const CreatePromotionBody = z
  .strictObject({
    code: PromotionCode,
    multiplier: z
      .number()
      .int()
      .min(MIN_MULTIPLIER)
      .max(MAX_MULTIPLIER)
      .optional()
      .openapi({ example: 2, description: "integer 2–10, default 2" }),
    maxRedemptions: z
      .number()
      .int()
      .min(1)
      .max(MAX_REDEMPTIONS)
      .nullable()
      .optional()
      .openapi({ description: "absent or null: unlimited" }),
    startsAt: Instant.nullable().optional(),
    endsAt: Instant.nullable()
      .optional()
      .openapi({ description: "exclusive: a redemption at endsAt is refused" }),
  })
  .refine((b) => !b.startsAt || !b.endsAt || Date.parse(b.startsAt) < Date.parse(b.endsAt), {
    message: "startsAt must be before endsAt",
    path: ["endsAt"],
  });

const RedeemBody = z.strictObject({ accountId: UserAccountId });

const RedemptionSchema = z
  .object({
    code: PromotionCode,
    accountId: z.string(),
    basis: Balance.openapi({
      description: "the settled balance the multiplier was applied to (pending holds included)",
    }),
    credited: Balance.openapi({ description: "basis × (multiplier − 1), from @promotions" }),
    transactionId: Uuid.nullable().openapi({ description: "null when basis was 0" }),
    createdAt: Timestamp,
  })
  .openapi("Redemption");

const RedeemResult = z
  .object({ redemption: RedemptionSchema, account: Account })
  .openapi("RedemptionResult", {
    description: "Alice, 50 settled and a pending hold of 20, redeems DOUBLE",
    example: {
      redemption: {
        code: "DOUBLE",
        accountId: "alice",
        basis: 50,
        credited: 50,
        transactionId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f52",
        createdAt: "2026-11-23T18:10:00.000Z",
      },
      account: {
        id: "alice",
        settled: 100,
        held: 20,
        available: 80,
        metadata: null,
        createdAt: "2026-11-23T18:00:00.000Z",
      },
    },
  });

const CodeParams = z.object({ code: PromotionCode });

const tags = ["promotions"];
const security = [{ bearer: [] }];

const create = createRoute({
  operationId: "createPromotion",
  method: "post",
  path: "/v1/promotions",
  tags,
  security,
  summary: "Create a promotion that multiplies settled coins (admin)",
  middleware: [requireAdmin] as const,
  request: { headers: IdempotencyHeader(false), body: jsonBody(CreatePromotionBody) },
  responses: {
    201: jsonResponse(PromotionSchema, "The new promotion", { replayable: true }),
    ...problems([...V1_CODES, ...IDEMPOTENT_CODES, "forbidden", "promotion_exists"], {
      replayable: true,
    }),
  },
});

const get = createRoute({
  operationId: "getPromotion",
  method: "get",
  path: "/v1/promotions/{code}",
  tags,
  security,
  summary: "Read a promotion and its redemption count",
  request: { params: CodeParams },
  responses: {
    200: jsonResponse(PromotionSchema, "The promotion"),
    ...problems([...V1_CODES, "promotion_not_found"]),
  },
});

const redeem = createRoute({
  operationId: "redeemPromotion",
  method: "post",
  path: "/v1/promotions/{code}/redemptions",
  tags,
  security,
  summary: "Redeem a promotion: credit settled × (multiplier − 1), once per account",
  description:
    "The settled balance is read under the account's lock when the redemption is applied; " +
    "pending holds are not touched and later settle or release against the new balance.",
  request: { params: CodeParams, headers: IdempotencyHeader(true), body: jsonBody(RedeemBody) },
  responses: {
    201: jsonResponse(RedeemResult, "The redemption and the account after it", {
      replayable: true,
    }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "idempotency_key_required",
        "promotion_not_found",
        "account_not_found",
        "promotion_already_redeemed",
        "promotion_inactive",
        "balance_limit_exceeded",
      ],
      { replayable: true },
    ),
  },
});

export const promotionRoutes = new OpenAPIHono<AppEnv>()
  .openapi(create, async (c) => {
    const body = c.req.valid("json");
    // A promotion belongs to no account: its key is kept in the bucket its code would have.
    const on = { scope: body.code, bucket: bucketOf(body.code) };
    const shards = await shardsOf(c.get("deps").db);
    return idempotent(c, { required: false, status: 201, body, ...on }, (tx) =>
      createPromotion(tx, body, shards),
    );
  })
  .openapi(get, async (c) =>
    send(c, render(200, await getPromotion(c.get("deps").db, c.req.valid("param").code))),
  )
  .openapi(redeem, async (c) => {
    const { code } = c.req.valid("param");
    const body = c.req.valid("json");
    const { scope, bucket } = onAccount(body.accountId);
    const shards = await shardsOf(c.get("deps").db);
    return idempotent(c, { required: true, status: 201, body, scope, bucket }, (tx) =>
      redeemPromotion(tx, { code, accountId: body.accountId }, shards),
    );
  });
