/**
 * An in-memory reference model of DESIGN.md sections 2 and 3, written to be obviously right
 * rather than fast: every balance is a bigint, every rule is one `if`, and nothing is shared
 * with src/. The property tests run the same commands against Postgres and against this model
 * and compare results, error codes and state.
 */
import { MAX_AMOUNT } from "../../src/db/schema/index.ts";
import type { DomainErrorCode } from "../../src/ledger/errors.ts";

export const MAX = BigInt(MAX_AMOUNT);

export type HoldStatus = "pending" | "settled" | "released" | "expired";

export interface ModelAccount {
  settled: bigint;
  held: bigint;
}

export interface ModelHold {
  accountId: string;
  amount: bigint;
  status: HoldStatus;
  settledAmount: bigint | null;
  /** The sum of its refunds, at most settledAmount. */
  refundedAmount: bigint;
  /** Its deadline has passed by the database clock (the tests backdate it to make it so). */
  due: boolean;
}

export interface ModelPromotion {
  multiplier: bigint;
  maxRedemptions: number | null;
  /** Inside its window; the tests only make promotions that are always or never active. */
  active: boolean;
  /** accountId → coins credited by its redemption (0 when it had nothing settled). */
  redeemedBy: Map<string, bigint>;
}

export interface ModelState {
  accounts: Map<string, ModelAccount>;
  holds: Map<string, ModelHold>;
  promotions: Map<string, ModelPromotion>;
  /** The system accounts' settled balances: plain sums, allowed to go negative. */
  system: {
    "@issuance": bigint;
    "@revenue": bigint;
    "@promotions": bigint;
    "@adjustments": bigint;
  };
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; code: DomainErrorCode };

export interface AccountView {
  settled: bigint;
  held: bigint;
  available: bigint;
}

export interface HoldView {
  amount: bigint;
  status: HoldStatus;
  settledAmount: bigint | null;
  refundedAmount: bigint;
}

export interface RefundView {
  amount: bigint;
  hold: HoldView;
  account: AccountView;
}

export interface RedemptionView {
  basis: bigint;
  credited: bigint;
  account: AccountView;
}

export type ExpireView =
  | { kind: "expired" | "not_due" | "resolved"; hold: HoldView }
  | { kind: "missing" };

const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const refuse = <T>(code: DomainErrorCode): Outcome<T> => ({ ok: false, code });

function amountOf(amount: number): bigint {
  if (!Number.isSafeInteger(amount) || amount < 1) throw new TypeError(`bad amount ${amount}`);
  return BigInt(amount);
}

export const accountView = (a: ModelAccount): AccountView => ({
  settled: a.settled,
  held: a.held,
  available: a.settled - a.held,
});

export const holdView = (h: ModelHold): HoldView => ({
  amount: h.amount,
  status: h.status,
  settledAmount: h.settledAmount,
  refundedAmount: h.refundedAmount,
});

export class LedgerModel {
  constructor(
    readonly state: ModelState = {
      accounts: new Map(),
      holds: new Map(),
      promotions: new Map(),
      system: { "@issuance": 0n, "@revenue": 0n, "@promotions": 0n, "@adjustments": 0n },
    },
  ) {}

  clone(): LedgerModel {
    return new LedgerModel(structuredClone(this.state));
  }

  addPromotion(
    code: string,
    promotion: { multiplier: number; maxRedemptions?: number | null; active?: boolean },
  ): void {
    this.state.promotions.set(code, {
      multiplier: BigInt(promotion.multiplier),
      maxRedemptions: promotion.maxRedemptions ?? null,
      active: promotion.active ?? true,
      redeemedBy: new Map(),
    });
  }

  createAccount(id: string): Outcome<AccountView> {
    if (this.state.accounts.has(id)) return refuse("account_exists");
    const account = { settled: 0n, held: 0n };
    this.state.accounts.set(id, account);
    return ok(accountView(account));
  }

  credit(accountId: string, amount: number): Outcome<AccountView> {
    const coins = amountOf(amount);
    const account = this.state.accounts.get(accountId);
    if (!account) return refuse("account_not_found");
    if (account.settled + coins > MAX) return refuse("balance_limit_exceeded");
    account.settled += coins;
    this.state.system["@issuance"] -= coins;
    return ok(accountView(account));
  }

  /** `holdId` is the caller's name for the hold (the real system generates ids). */
  placeHold(
    holdId: string,
    accountId: string,
    amount: number,
  ): Outcome<{ hold: HoldView; account: AccountView }> {
    const coins = amountOf(amount);
    const account = this.state.accounts.get(accountId);
    if (!account) return refuse("account_not_found");
    if (account.settled - account.held < coins) return refuse("insufficient_funds");
    if (this.state.holds.has(holdId)) throw new Error(`model: hold ${holdId} placed twice`);
    account.held += coins;
    const hold: ModelHold = {
      accountId,
      amount: coins,
      status: "pending",
      settledAmount: null,
      refundedAmount: 0n,
      due: false,
    };
    this.state.holds.set(holdId, hold);
    return ok({ hold: holdView(hold), account: accountView(account) });
  }

  /** Settles the whole hold when `amount` is undefined; a partial settle frees the rest. */
  settle(holdId: string, amount?: number): Outcome<HoldView> {
    const hold = this.state.holds.get(holdId);
    if (!hold) return refuse("hold_not_found");
    // A repeated settle returns the settled hold, whatever amount it asks for.
    if (hold.status === "settled") return ok(holdView(hold));
    if (hold.status !== "pending") return refuse("hold_not_pending");
    const captured = amount === undefined ? hold.amount : amountOf(amount);
    if (captured > hold.amount) return refuse("amount_exceeds_hold");
    const account = this.account(hold.accountId);
    account.settled -= captured;
    account.held -= hold.amount;
    this.state.system["@revenue"] += captured;
    hold.status = "settled";
    hold.settledAmount = captured;
    return ok(holdView(hold));
  }

  release(holdId: string): Outcome<HoldView> {
    const hold = this.state.holds.get(holdId);
    if (!hold) return refuse("hold_not_found");
    if (hold.status === "released") return ok(holdView(hold));
    if (hold.status !== "pending") return refuse("hold_not_pending");
    this.end(hold, "released");
    return ok(holdView(hold));
  }

  /** Time passes for one hold: its deadline is now behind us. Terminal holds never change. */
  makeDue(holdId: string): void {
    const hold = this.state.holds.get(holdId);
    if (hold?.status === "pending") hold.due = true;
  }

  expire(holdId: string): ExpireView {
    const hold = this.state.holds.get(holdId);
    if (!hold) return { kind: "missing" };
    if (hold.status !== "pending") return { kind: "resolved", hold: holdView(hold) };
    if (!hold.due) return { kind: "not_due", hold: holdView(hold) };
    this.end(hold, "expired");
    return { kind: "expired", hold: holdView(hold) };
  }

  /** Credits settled × (multiplier − 1): settled funds only; pending holds are untouched. */
  redeem(code: string, accountId: string): Outcome<RedemptionView> {
    const promotion = this.state.promotions.get(code);
    if (!promotion) return refuse("promotion_not_found");
    const account = this.state.accounts.get(accountId);
    if (!account) return refuse("account_not_found");
    if (promotion.redeemedBy.has(accountId)) return refuse("promotion_already_redeemed");
    if (!promotion.active) return refuse("promotion_inactive");
    const cap = promotion.maxRedemptions;
    if (cap !== null && promotion.redeemedBy.size >= cap) return refuse("promotion_inactive");
    const basis = account.settled;
    if (basis * promotion.multiplier > MAX) return refuse("balance_limit_exceeded");
    const credited = basis * (promotion.multiplier - 1n);
    account.settled += credited;
    this.state.system["@promotions"] -= credited;
    promotion.redeemedBy.set(accountId, credited);
    return ok({ basis, credited, account: accountView(account) });
  }

  /**
   * Gives back coins of a settled hold from @revenue: all that is still refundable when
   * `amount` is undefined. One more additive entry; nothing posted before is recomputed.
   */
  refund(holdId: string, amount?: number): Outcome<RefundView> {
    const hold = this.state.holds.get(holdId);
    if (!hold) return refuse("hold_not_found");
    if (hold.status !== "settled") return refuse("hold_not_settled");
    const refundable = hold.settledAmount! - hold.refundedAmount;
    const coins = amount === undefined ? refundable : amountOf(amount);
    if (coins < 1n || coins > refundable) return refuse("refund_exceeds_settled");
    const account = this.account(hold.accountId);
    if (account.settled + coins > MAX) return refuse("balance_limit_exceeded");
    account.settled += coins;
    this.state.system["@revenue"] -= coins;
    hold.refundedAmount += coins;
    return ok({ amount: coins, hold: holdView(hold), account: accountView(account) });
  }

  /** An admin correction, either sign: never below 0 available, never past 2^53 − 1. */
  adjust(accountId: string, amount: number): Outcome<AccountView> {
    if (!Number.isSafeInteger(amount) || amount === 0) throw new TypeError(`bad amount ${amount}`);
    const coins = BigInt(amount);
    const account = this.state.accounts.get(accountId);
    if (!account) return refuse("account_not_found");
    if (account.settled + coins < account.held) return refuse("insufficient_funds");
    if (account.settled + coins > MAX) return refuse("balance_limit_exceeded");
    account.settled += coins;
    this.state.system["@adjustments"] -= coins;
    return ok(accountView(account));
  }

  private account(id: string): ModelAccount {
    const account = this.state.accounts.get(id);
    if (!account) throw new Error(`model: hold on unknown account ${id}`);
    return account;
  }

  private end(hold: ModelHold, status: "released" | "expired"): void {
    this.account(hold.accountId).held -= hold.amount;
    hold.status = status;
  }
}
