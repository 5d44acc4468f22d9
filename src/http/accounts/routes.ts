import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { MAX_AMOUNT } from "../../db/schema/index.ts";
import { getAccount } from "../../ledger/account.ts";
import { adjustAccount } from "../../ledger/adjust-account.ts";
import { createAccount } from "../../ledger/create-account.ts";
import { creditAccount } from "../../ledger/credit-account.ts";
import { isSystemAccountId } from "../../ledger/ids.ts";
import { listEntries } from "../../ledger/list-entries.ts";
import { requireAdmin } from "../auth.ts";
import type { AppEnv } from "../context.ts";
import { idempotent, onAccount } from "../idempotency.ts";
import { HttpError } from "../problem.ts";
import { render, send } from "../respond.ts";
import { IDEMPOTENT_CODES, jsonResponse, problems, V1_CODES } from "../responses.ts";
import {
  Account,
  Amount,
  AnyAccountId,
  Entry,
  IdempotencyHeader,
  jsonBody,
  Metadata,
  PageQuery,
  pageOf,
  Reason,
  UserAccountId,
  Uuid,
} from "../schemas.ts";

const CreateAccountBody = z.strictObject({ id: UserAccountId, metadata: Metadata.optional() });
const CreditBody = z.strictObject({
  amount: Amount,
  reason: Reason.optional(),
  metadata: Metadata.optional(),
});
const CreditResult = z.object({ transactionId: Uuid, account: Account }).openapi("CreditResult");
const SignedAmount = z
  .number()
  .int()
  .min(-MAX_AMOUNT)
  .max(MAX_AMOUNT)
  .refine((n) => n !== 0, "must not be 0")
  .openapi({
    example: -20,
    description: "Coins, a non-zero integer in [−(2^53 − 1), 2^53 − 1]: + gives, − takes back",
  });
const AdjustBody = z.strictObject({
  amount: SignedAmount,
  reason: Reason,
  metadata: Metadata.optional(),
});
const Adjustment = z
  .object({
    transactionId: Uuid,
    accountId: z.string(),
    amount: z.number().int(),
    reason: z.string(),
    metadata: Metadata.nullable(),
  })
  .openapi("Adjustment", { description: "one adjustment transaction against @adjustments" });
const AdjustResult = z
  .object({ adjustment: Adjustment, account: Account })
  .openapi("AdjustResult", {
    example: {
      adjustment: {
        transactionId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f52",
        accountId: "alice",
        amount: -20,
        reason: "chargeback on order 42",
        metadata: null,
      },
      account: {
        id: "alice",
        settled: 30,
        held: 0,
        available: 30,
        metadata: null,
        createdAt: "2026-11-23T18:00:00.000Z",
      },
    },
  });

const tags = ["accounts"];
const security = [{ bearer: [] }];

const create = createRoute({
  operationId: "createAccount",
  method: "post",
  path: "/v1/accounts",
  tags,
  security,
  summary: "Open a user account",
  request: { headers: IdempotencyHeader(false), body: jsonBody(CreateAccountBody) },
  responses: {
    201: jsonResponse(Account, "The new account", { replayable: true }),
    ...problems([...V1_CODES, ...IDEMPOTENT_CODES, "account_exists"], { replayable: true }),
  },
});

const get = createRoute({
  operationId: "getAccount",
  method: "get",
  path: "/v1/accounts/{id}",
  tags,
  security,
  summary: "Read an account's settled, held and available balances",
  request: { params: z.object({ id: AnyAccountId }) },
  responses: {
    200: jsonResponse(Account, "The account"),
    ...problems([...V1_CODES, "forbidden", "account_not_found"]),
  },
});

const entries = createRoute({
  operationId: "listEntries",
  method: "get",
  path: "/v1/accounts/{id}/entries",
  tags,
  security,
  summary: "List an account's ledger entries, newest first",
  request: { params: z.object({ id: AnyAccountId }), query: PageQuery },
  responses: {
    200: jsonResponse(pageOf(Entry, "EntryPage"), "A page of entries"),
    ...problems([...V1_CODES, "forbidden", "account_not_found"]),
  },
});

const credit = createRoute({
  operationId: "creditAccount",
  method: "post",
  path: "/v1/accounts/{id}/credits",
  tags,
  security,
  summary: "Credit coins to a user account from @issuance (admin)",
  middleware: [requireAdmin] as const,
  request: {
    params: z.object({ id: UserAccountId }),
    headers: IdempotencyHeader(true),
    body: jsonBody(CreditBody),
  },
  responses: {
    201: jsonResponse(CreditResult, "The posted transaction", { replayable: true }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "idempotency_key_required",
        "forbidden",
        "account_not_found",
        "balance_limit_exceeded",
      ],
      { replayable: true },
    ),
  },
});

const adjust = createRoute({
  operationId: "adjustAccount",
  method: "post",
  path: "/v1/accounts/{id}/adjustments",
  tags,
  security,
  summary: "Correct a user account's balance against @adjustments (admin)",
  middleware: [requireAdmin] as const,
  request: {
    params: z.object({ id: UserAccountId }),
    headers: IdempotencyHeader(true),
    body: jsonBody(AdjustBody),
  },
  responses: {
    201: jsonResponse(AdjustResult, "The posted adjustment", { replayable: true }),
    ...problems(
      [
        ...V1_CODES,
        ...IDEMPOTENT_CODES,
        "idempotency_key_required",
        "forbidden",
        "account_not_found",
        "insufficient_funds",
        "balance_limit_exceeded",
      ],
      { replayable: true },
    ),
  },
});

/** System accounts (`@…`) are readable by admins only. */
export function assertReadable(role: string, id: string) {
  if (isSystemAccountId(id) && role !== "admin") {
    throw new HttpError("forbidden", "system accounts are readable with the admin token only");
  }
}

export const accountRoutes = new OpenAPIHono<AppEnv>()
  .openapi(create, (c) => {
    const body = c.req.valid("json");
    return idempotent(c, { required: false, status: 201, body, ...onAccount(body.id) }, (tx) =>
      createAccount(tx, body),
    );
  })
  .openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    assertReadable(c.get("role"), id);
    return send(c, render(200, await getAccount(c.get("deps").db, id)));
  })
  .openapi(entries, async (c) => {
    const { id } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    assertReadable(c.get("role"), id);
    const page = await listEntries(c.get("deps").db, { accountId: id, limit, before: cursor });
    return send(c, render(200, page));
  })
  .openapi(credit, (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const on = { ...onAccount(id), posts: id };
    return idempotent(c, { required: true, status: 201, body, ...on }, (tx) =>
      creditAccount(tx, { accountId: id, ...body }),
    );
  })
  .openapi(adjust, (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const on = { ...onAccount(id), posts: id };
    return idempotent(c, { required: true, status: 201, body, ...on }, (tx) =>
      adjustAccount(tx, { accountId: id, ...body }),
    );
  });
