import { z } from "@hono/zod-openapi";
import type { DomainErrorCode } from "../ledger/errors.ts";
import {
  type ErrorCode,
  type HttpErrorCode,
  PROBLEM_CONTENT_TYPE,
  problem,
  statusFor,
} from "./problem.ts";

/** A detail each code's example shows; the record's keys are every code the contract has. */
const DOMAIN_DETAILS: Record<DomainErrorCode, string> = {
  account_not_found: "account bob does not exist",
  hold_not_found: "hold 019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50 does not exist",
  promotion_not_found: "promotion DOUBLE does not exist",
  webhook_endpoint_not_found:
    "webhook endpoint 019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f70 does not exist",
  account_exists: "account alice already exists",
  promotion_exists: "promotion DOUBLE already exists",
  hold_not_pending: "hold 019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50 is released and cannot be settled",
  hold_not_settled: "hold 019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50 is pending and cannot be refunded",
  promotion_already_redeemed: "account alice has already redeemed DOUBLE",
  insufficient_funds: "account alice has 30 coins available, 40 needed",
  amount_exceeds_hold: "cannot settle 30 on a hold of 20",
  refund_exceeds_settled:
    "cannot refund 30 of hold 019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50: 15 of its 20 settled coins are still refundable",
  promotion_inactive: "promotion DOUBLE ended at 2026-12-01T00:00:00.000Z",
  balance_limit_exceeded: "crediting 100 would take account alice past 2^53 - 1 coins",
};

const HTTP_DETAILS: Record<HttpErrorCode, string> = {
  invalid_request: "invalid body",
  idempotency_key_required: "this request needs an Idempotency-Key header",
  unauthorized: "a valid bearer token is required",
  forbidden: "this endpoint needs the admin token",
  not_found: "no such resource",
  method_not_allowed: "PUT is not allowed on /v1/accounts/alice",
  idempotency_key_in_use: "this Idempotency-Key is in use by a request still running",
  payload_too_large: "request bodies are limited to 65536 bytes",
  idempotency_key_reused: "this Idempotency-Key was used for a different request",
  internal_error: "internal error; nothing was committed unless a retry says so",
  unavailable: "a dependency is unavailable; retry with the same Idempotency-Key",
};

const DETAILS: Record<ErrorCode, string> = { ...DOMAIN_DETAILS, ...HTTP_DETAILS };

/** Codes that every /v1 route can answer: a bad parameter, no token, a crash, a dependency down. */
export const V1_CODES = [
  "invalid_request",
  "unauthorized",
  "internal_error",
  "unavailable",
] as const satisfies ErrorCode[];

/** Codes of a POST that goes through idempotent(): the body limit and the key's own refusals. */
export const IDEMPOTENT_CODES = [
  "payload_too_large",
  "idempotency_key_in_use",
  "idempotency_key_reused",
] as const satisfies ErrorCode[];

export const Problem = z
  .object({
    type: z.string().openapi({ example: "https://holdfast.dev/errors/insufficient_funds" }),
    title: z.string().openapi({ example: "Unprocessable Content" }),
    status: z.number().int().openapi({ example: 422 }),
    detail: z.string(),
    code: z.string().openapi({ description: "the machine-readable contract" }),
    requestId: z.string().openapi({ description: "also in the X-Request-Id header" }),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "validation failures, one per field" }),
  })
  .openapi("Problem", { description: "RFC 9457 problem details" });

const header = (description: string, schema: Record<string, unknown>, required = false) => ({
  description,
  required,
  schema,
});

/** Response headers, registered once as components and referenced by each response. */
export const HEADERS = {
  "X-Request-Id": header(
    "This request's id, also `requestId` in a problem body",
    { type: "string" },
    true,
  ),
  "Idempotent-Replayed": header(
    "`true` on a stored response replayed for a repeated Idempotency-Key",
    { type: "string", enum: ["true"] },
  ),
  "WWW-Authenticate": header("The scheme to authenticate with", {
    type: "string",
    example: 'Bearer realm="holdfast"',
  }),
} as const;

type HeaderName = keyof typeof HEADERS;

const refs = (...names: HeaderName[]) =>
  Object.fromEntries(names.map((n) => [n, { $ref: `#/components/headers/${n}` }]));

const isDomainCode = (code: ErrorCode): boolean => code in DOMAIN_DETAILS;

/**
 * The error responses of a route, from the codes it can answer: one entry per status, whose
 * `code` is an enum of that status's codes. `replayable` marks a route behind idempotent(),
 * whose business refusals (domain codes) are stored and replayed with Idempotent-Replayed.
 */
export function problems(codes: readonly ErrorCode[], options: { replayable?: boolean } = {}) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = statusFor(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => {
      const [first, ...rest] = list;
      const names: HeaderName[] = ["X-Request-Id"];
      if (options.replayable && list.some(isDomainCode)) names.push("Idempotent-Replayed");
      if (status === 401) names.push("WWW-Authenticate");
      return [
        status,
        {
          description: `problem+json, \`code\` one of: ${list.join(", ")}`,
          headers: refs(...names),
          content: {
            [PROBLEM_CONTENT_TYPE]: {
              schema: Problem.extend({
                status: z.literal(status),
                code: z.enum([first!, ...rest]),
              }),
              example: problem(first!, DETAILS[first!], "0b6f3c1e-5d2a-4e8b-9a71-2c4d6e8f0a1b"),
            },
          },
        },
      ];
    }),
  );
}

/** A response with no body. */
export const noContent = (description: string) => ({
  description,
  headers: refs("X-Request-Id"),
});

/** A JSON response; `replayable` for a route behind idempotent(). */
export const jsonResponse = <T extends z.ZodType>(
  schema: T,
  description: string,
  options: { replayable?: boolean; example?: unknown } = {},
) => ({
  description,
  headers: refs("X-Request-Id", ...(options.replayable ? (["Idempotent-Replayed"] as const) : [])),
  content: {
    "application/json": {
      schema,
      ...(options.example === undefined ? {} : { example: options.example }),
    },
  },
});
