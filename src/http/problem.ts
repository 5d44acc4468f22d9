import type { DomainErrorCode } from "../ledger/errors.ts";

export type HttpErrorCode =
  | "invalid_request"
  | "idempotency_key_required"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "idempotency_key_in_use"
  | "payload_too_large"
  | "idempotency_key_reused"
  | "internal_error"
  | "unavailable";

export type ErrorCode = DomainErrorCode | HttpErrorCode;

export interface FieldError {
  field: string;
  message: string;
}

/** A refusal raised by the HTTP layer itself (auth, idempotency, validation). */
export class HttpError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly errors?: FieldError[],
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function statusFor(code: ErrorCode): number {
  switch (code) {
    case "invalid_request":
    case "idempotency_key_required":
      return 400;
    case "unauthorized":
      return 401;
    case "forbidden":
      return 403;
    case "account_not_found":
    case "hold_not_found":
    case "promotion_not_found":
    case "webhook_endpoint_not_found":
    case "not_found":
      return 404;
    case "method_not_allowed":
      return 405;
    case "account_exists":
    case "promotion_exists":
    case "hold_not_pending":
    case "hold_not_settled":
    case "promotion_already_redeemed":
    case "idempotency_key_in_use":
      return 409;
    case "payload_too_large":
      return 413;
    case "insufficient_funds":
    case "amount_exceeds_hold":
    case "refund_exceeds_settled":
    case "promotion_inactive":
    case "idempotency_key_reused":
    case "balance_limit_exceeded":
      return 422;
    case "internal_error":
      return 500;
    case "unavailable":
      return 503;
    default: {
      const unhandled: never = code;
      throw new Error(`no status for error code ${unhandled}`);
    }
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId: string;
  errors?: FieldError[];
}

export function problem(
  code: ErrorCode,
  detail: string,
  requestId: string,
  errors?: FieldError[],
): Problem {
  const status = statusFor(code);
  return {
    type: `https://holdfast.dev/errors/${code}`,
    title: TITLES[status] ?? "Error",
    status,
    detail,
    code,
    requestId,
    ...(errors ? { errors } : {}),
  };
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
