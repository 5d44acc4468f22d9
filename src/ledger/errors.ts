/** The contract's machine-readable error codes that the domain can raise. */
export type DomainErrorCode =
  | "account_not_found"
  | "hold_not_found"
  | "promotion_not_found"
  | "webhook_endpoint_not_found"
  | "account_exists"
  | "promotion_exists"
  | "hold_not_pending"
  | "hold_not_settled"
  | "promotion_already_redeemed"
  | "insufficient_funds"
  | "amount_exceeds_hold"
  | "refund_exceeds_settled"
  | "promotion_inactive"
  | "balance_limit_exceeded";

/** A refusal the caller can act on. Knows nothing of HTTP: src/http/problem.ts maps codes. */
export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
