import { z } from "zod";

/** DESIGN.md section 4, the error table: the codes each status may carry. */
export const CONTRACT_CODES: Readonly<Record<number, readonly string[]>> = {
  400: ["invalid_request", "idempotency_key_required"],
  401: ["unauthorized"],
  403: ["forbidden"],
  404: [
    "account_not_found",
    "hold_not_found",
    "promotion_not_found",
    "webhook_endpoint_not_found",
    "not_found",
  ],
  405: ["method_not_allowed"],
  409: [
    "account_exists",
    "promotion_exists",
    "hold_not_pending",
    "hold_not_settled",
    "promotion_already_redeemed",
    "idempotency_key_in_use",
  ],
  413: ["payload_too_large"],
  422: [
    "insufficient_funds",
    "amount_exceeds_hold",
    "refund_exceeds_settled",
    "promotion_inactive",
    "idempotency_key_reused",
    "balance_limit_exceeded",
  ],
  500: ["internal_error"],
  503: ["unavailable"],
};

/**
 * Refusals that passed validation: the contract stores them under their Idempotency-Key like a
 * success, so the one row such a request may add is its key.
 */
export const BUSINESS_CODES = new Set([
  "account_not_found",
  "hold_not_found",
  "promotion_not_found",
  "account_exists",
  "promotion_exists",
  "hold_not_pending",
  "hold_not_settled",
  "promotion_already_redeemed",
  "insufficient_funds",
  "amount_exceeds_hold",
  "refund_exceeds_settled",
  "promotion_inactive",
  "balance_limit_exceeded",
]);

/** The contract's key syntax, as the server sees the header (HTTP trims surrounding whitespace). */
export const validIdempotencyKey = (value: string | undefined): boolean =>
  value !== undefined && /^[\x20-\x7E]{1,255}$/.test(value.trim());

// Success shapes from DESIGN.md section 4, written from the contract rather than imported from
// src/http, so that a route answering 2xx with the wrong shape is caught.
const Iso = z.iso.datetime();
const Int = z.number().int();
const Meta = z.record(z.string(), z.unknown()).nullable();
const Account = z.object({
  id: z.string(),
  settled: Int,
  held: Int,
  available: Int,
  metadata: Meta,
  createdAt: Iso,
});
const Hold = z.object({
  id: z.uuid(),
  accountId: z.string(),
  amount: Int.min(1),
  status: z.enum(["pending", "settled", "released", "expired"]),
  settledAmount: Int.nullable(),
  refundedAmount: Int.min(0),
  orderId: z.string().nullable(),
  description: z.string().nullable(),
  metadata: Meta,
  reason: z.string().nullable(),
  expiresAt: Iso,
  createdAt: Iso,
  resolvedAt: Iso.nullable(),
});
const Entry = z.object({
  seq: Int.nullable(),
  transactionId: z.uuid(),
  kind: z.enum(["credit", "purchase", "promotion", "refund", "adjustment"]),
  amount: Int,
  settledAfter: Int.nullable(),
  holdId: z.uuid().nullable(),
  createdAt: Iso,
  metadata: Meta,
});
const Promotion = z.object({
  code: z.string().regex(/^[A-Z0-9_-]{3,32}$/),
  multiplier: Int.min(2).max(10),
  maxRedemptions: Int.nullable(),
  redemptions: Int.min(0),
  startsAt: Iso.nullable(),
  endsAt: Iso.nullable(),
  createdAt: Iso,
});
const Refund = z.object({
  id: z.uuid(),
  holdId: z.uuid(),
  accountId: z.string(),
  amount: Int.min(1),
  reason: z.string().nullable(),
  metadata: Meta,
  transactionId: z.uuid(),
  createdAt: Iso,
});
const page = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable() });

export type RouteName =
  | "openAccount"
  | "getAccount"
  | "listEntries"
  | "listHolds"
  | "credit"
  | "purchase"
  | "getHold"
  | "settle"
  | "release"
  | "refund"
  | "listRefunds"
  | "adjust"
  | "createPromotion"
  | "getPromotion"
  | "redeem";

export interface Route {
  method: "GET" | "POST";
  /** With `{}` where the path parameter goes. */
  template: string;
  status: 200 | 201;
  body: z.ZodType;
  admin: boolean;
}

export const ROUTES: Record<RouteName, Route> = {
  openAccount: {
    method: "POST",
    template: "/v1/accounts",
    status: 201,
    body: Account,
    admin: false,
  },
  getAccount: {
    method: "GET",
    template: "/v1/accounts/{}",
    status: 200,
    body: Account,
    admin: false,
  },
  listEntries: {
    method: "GET",
    template: "/v1/accounts/{}/entries",
    status: 200,
    body: page(Entry),
    admin: false,
  },
  listHolds: {
    method: "GET",
    template: "/v1/accounts/{}/holds",
    status: 200,
    body: page(Hold),
    admin: false,
  },
  credit: {
    method: "POST",
    template: "/v1/accounts/{}/credits",
    status: 201,
    body: z.object({ transactionId: z.uuid(), account: Account }),
    admin: true,
  },
  purchase: {
    method: "POST",
    template: "/v1/purchases",
    status: 201,
    body: z.object({ hold: Hold, account: Account }),
    admin: false,
  },
  getHold: { method: "GET", template: "/v1/holds/{}", status: 200, body: Hold, admin: false },
  settle: {
    method: "POST",
    template: "/v1/holds/{}/settle",
    status: 200,
    body: Hold,
    admin: false,
  },
  release: {
    method: "POST",
    template: "/v1/holds/{}/release",
    status: 200,
    body: Hold,
    admin: false,
  },
  refund: {
    method: "POST",
    template: "/v1/holds/{}/refunds",
    status: 201,
    body: z.object({ refund: Refund, hold: Hold, account: Account }),
    admin: false,
  },
  listRefunds: {
    method: "GET",
    template: "/v1/holds/{}/refunds",
    status: 200,
    body: page(Refund),
    admin: false,
  },
  adjust: {
    method: "POST",
    template: "/v1/accounts/{}/adjustments",
    status: 201,
    body: z.object({
      adjustment: z.object({
        transactionId: z.uuid(),
        accountId: z.string(),
        amount: Int.refine((n) => n !== 0),
        reason: z.string(),
        metadata: Meta,
      }),
      account: Account,
    }),
    admin: true,
  },
  createPromotion: {
    method: "POST",
    template: "/v1/promotions",
    status: 201,
    body: Promotion,
    admin: true,
  },
  getPromotion: {
    method: "GET",
    template: "/v1/promotions/{}",
    status: 200,
    body: Promotion,
    admin: false,
  },
  redeem: {
    method: "POST",
    template: "/v1/promotions/{}/redemptions",
    status: 201,
    body: z.object({
      redemption: z.object({
        code: z.string(),
        accountId: z.string(),
        basis: Int,
        credited: Int,
        transactionId: z.uuid().nullable(),
        createdAt: Iso,
      }),
      account: Account,
    }),
    admin: false,
  },
};

export const ROUTE_NAMES = Object.keys(ROUTES) as RouteName[];

/** "POST /v1/holds/{id}/settle", for test names. */
export function label(name: RouteName): string {
  const { method, template } = ROUTES[name];
  return `${method} ${template.replace("{}", template.includes("promotions") ? "{code}" : "{id}")}`;
}
