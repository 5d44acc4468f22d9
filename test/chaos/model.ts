import type { Answer, Request } from "./http.ts";

export type KeyedKind =
  | "purchase"
  | "credit"
  | "redeem"
  | "settle"
  | "release"
  | "refund"
  | "adjust";

/** A request sent with an Idempotency-Key, and the first definite answer it got. */
export interface KeyedOp {
  kind: KeyedKind;
  key: string;
  client: number;
  accountId: string;
  request: Request;
  answer?: Answer;
}

export interface HoldRecord {
  id: string;
  accountId: string;
  amount: number;
  orderId: string;
  client: number;
}

export interface ResolutionAnswer {
  verb: "settle" | "release";
  holdId: string;
  status: number;
  code?: string;
  // biome-ignore lint/suspicious/noExplicitAny: a Hold as the API renders it
  hold?: any;
  requestedAmount?: number;
}

export interface PromotionSpec {
  code: string;
  multiplier: number;
  maxRedemptions: number | null;
}

/**
 * What the clients know, built only from definite answers: the credits and promotion credits
 * they were told about, the holds they got a 201 for, and every answer to check later.
 * Balances are never tracked here: the settled amount of each hold is read from its final
 * state, so holds settled by the fulfilment worker count as well.
 */
export class Model {
  readonly ops: KeyedOp[] = [];
  readonly holds = new Map<string, HoldRecord>();
  /** Per hold, the amounts clients asked to settle (undefined: the whole hold). */
  readonly settleRequests = new Map<string, (number | undefined)[]>();
  /** Per hold, the reasons clients released it with. */
  readonly releaseRequests = new Map<string, string[]>();
  readonly resolutions: ResolutionAnswer[] = [];
  /** The first terminal state seen for each hold, as rendered: a terminal hold never changes. */
  readonly terminalSeen = new Map<string, string>();
  /** Check failures seen during the run (replays that differ, negative balances, …). */
  readonly violations: string[] = [];
  /** Operations by kind and outcome ("201", "422 insufficient_funds", "no answer"). */
  readonly outcomes: Record<string, Record<string, number>> = {};
  reads = 0;
  accountsSeen = 0;

  count(kind: string, answer: Answer | undefined) {
    const outcome = answer
      ? `${answer.status}${answer.json?.code ? ` ${answer.json.code}` : ""}`
      : "no answer";
    const byOutcome = this.outcomes[kind] ?? {};
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
    this.outcomes[kind] = byOutcome;
  }

  /** Every account body any answer carried: none may show a negative balance. */
  // biome-ignore lint/suspicious/noExplicitAny: an Account as the API renders it
  seeAccount(account: any, where: string) {
    if (!account || typeof account !== "object") return;
    this.accountsSeen++;
    const { settled, held, available } = account;
    if (
      !(Number.isSafeInteger(settled) && Number.isSafeInteger(held)) ||
      settled < 0 ||
      held < 0 ||
      available < 0 ||
      available !== settled - held
    ) {
      this.violations.push(`${where}: account read with bad balances ${JSON.stringify(account)}`);
    }
  }

  // biome-ignore lint/suspicious/noExplicitAny: a Hold as the API renders it
  seeHold(hold: any, where: string) {
    if (!hold || typeof hold !== "object" || typeof hold.id !== "string") return;
    if (
      hold.settledAmount !== null &&
      !(hold.settledAmount >= 1 && hold.settledAmount <= hold.amount)
    )
      this.violations.push(
        `${where}: hold with settledAmount out of range ${JSON.stringify(hold)}`,
      );
    if (
      !Number.isSafeInteger(hold.refundedAmount) ||
      hold.refundedAmount < 0 ||
      hold.refundedAmount > (hold.settledAmount ?? 0)
    )
      this.violations.push(
        `${where}: hold with refundedAmount out of range ${JSON.stringify(hold)}`,
      );
    if (hold.status === "pending") return;
    // A settled hold's refunds grow; nothing else of a terminal hold ever changes.
    const { refundedAmount: _, ...rest } = hold;
    const text = JSON.stringify(rest);
    const before = this.terminalSeen.get(hold.id);
    if (before === undefined) this.terminalSeen.set(hold.id, text);
    else if (before !== text)
      this.violations.push(`${where}: terminal hold changed from ${before} to ${text}`);
  }
}
