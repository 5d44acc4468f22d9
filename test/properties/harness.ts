/**
 * The real side of the model-based properties: runs a domain call and reduces its result to
 * the model's view of it, so that the two can be compared with one toEqual.
 */
import type fc from "fast-check";
import type { Db } from "../../src/db/client.ts";
import { type Account, getAccount } from "../../src/ledger/account.ts";
import { isDomainError } from "../../src/ledger/errors.ts";
import { SYSTEM_ACCOUNTS, type SystemAccountId } from "../../src/ledger/ids.ts";
import type { RedeemResult } from "../../src/ledger/redeem-promotion.ts";
import type { Hold } from "../../src/reservations/hold.ts";
import type { RefundResult } from "../../src/reservations/refund-hold.ts";
import type { ExpireOutcome } from "../../src/reservations/release-hold.ts";
import type {
  AccountView,
  ExpireView,
  HoldView,
  ModelState,
  Outcome,
  RedemptionView,
  RefundView,
} from "./model.ts";

/** A UUID no hold has: the id of a hold that does not exist. */
export const GHOST_HOLD = "01234567-89ab-7def-8123-456789abcdef";

/** Runs a domain call: its value, or the code of the DomainError it threw. Anything else fails. */
export async function attempt<T, V>(call: Promise<T>, view: (value: T) => V): Promise<Outcome<V>> {
  try {
    return { ok: true, value: view(await call) };
  } catch (error) {
    if (isDomainError(error)) return { ok: false, code: error.code };
    throw error;
  }
}

const big = (n: number | bigint): bigint => BigInt(n);

export const accountView = (a: Pick<Account, "settled" | "held" | "available">): AccountView => ({
  settled: big(a.settled),
  held: big(a.held),
  available: big(a.available),
});

export const holdView = (h: Hold): HoldView => ({
  amount: big(h.amount),
  status: h.status,
  settledAmount: h.settledAmount === null ? null : big(h.settledAmount),
  refundedAmount: big(h.refundedAmount),
});

export const refundView = (r: RefundResult): RefundView => ({
  amount: big(r.refund.amount),
  hold: holdView(r.hold),
  account: accountView(r.account),
});

export const redemptionView = (r: RedeemResult): RedemptionView => ({
  basis: big(r.redemption.basis),
  credited: big(r.redemption.credited),
  account: accountView(r.account),
});

export const expireView = (o: ExpireOutcome): ExpireView =>
  o.kind === "missing" ? o : { kind: o.kind, hold: holdView(o.hold) };

export type SystemBalances = Record<SystemAccountId, bigint>;

/**
 * System accounts are shared by every run in a test file's database, so the model keeps
 * only what the run itself moved; a run compares baseline + model with Postgres.
 */
export async function systemBalances(db: Db): Promise<SystemBalances> {
  const accounts = await Promise.all(SYSTEM_ACCOUNTS.map((id) => getAccount(db, id)));
  return Object.fromEntries(
    SYSTEM_ACCOUNTS.map((id, i) => [id, big(accounts[i]!.settled)]),
  ) as SystemBalances;
}

export function plus(baseline: SystemBalances, moved: ModelState["system"]): SystemBalances {
  return Object.fromEntries(
    SYSTEM_ACCOUNTS.map((id) => [id, baseline[id] + moved[id]]),
  ) as SystemBalances;
}

/**
 * No sweeper runs in these tests, and holds are backdated to make them due: a pending hold
 * past its deadline is expected here, not a violation of invariant 6.
 */
export const NO_SWEEPER_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * fast-check prints `{ seed, path }` on failure; FC_SEED=<seed> FC_PATH=<path> replays that
 * run (and only it) without editing the test. FC_NUM_RUNS=<n> runs longer, to hunt.
 */
export function runParameters<T>(defaultRuns: number): fc.Parameters<T> {
  const numRuns = Number(process.env.FC_NUM_RUNS ?? defaultRuns);
  const seed = process.env.FC_SEED;
  if (seed === undefined) return { numRuns };
  const path = process.env.FC_PATH;
  return path === undefined
    ? { numRuns, seed: Number(seed) }
    : { numRuns, seed: Number(seed), path, endOnFailure: true };
}

/** JSON for logs: bigints as their digits. */
export const show = (v: unknown): string =>
  JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}` : x));
