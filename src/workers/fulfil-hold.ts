import type { Job } from "bullmq";
import type { Db } from "../db/client.ts";
import { isDomainError } from "../ledger/errors.ts";
import type { Logger } from "../logger.ts";
import { findHold, type Hold } from "../reservations/hold.ts";
import { releaseHold } from "../reservations/release-hold.ts";
import { type SettleInput, settleHold } from "../reservations/settle-hold.ts";
import { type FulfilmentAnswer, type FulfilmentConfig, postFulfilment } from "./post-fulfilment.ts";
import { HoldJobData, parsePayload } from "./queues.ts";

const MAX_REASON_LENGTH = 500;

export type FulfilResult =
  | { outcome: "settled"; settledAmount: number }
  | { outcome: "released"; reason: string }
  /** Nothing was posted: the hold had left `pending`, vanished, or passed its deadline. */
  | { outcome: "skipped"; why: string };

/** An answer worth retrying: 408, 429, 5xx (and 3xx, which is not followed). */
export class RetryableFulfilmentError extends Error {
  constructor(readonly status: number) {
    super(`fulfilment answered HTTP ${status}; will retry`);
    this.name = "RetryableFulfilmentError";
  }
}

/**
 * A 2xx whose body cannot be trusted to say how much to capture: retried like a 5xx (and
 * logged, as every failed attempt is), never taken as "capture everything".
 */
export class BadFulfilmentAnswerError extends Error {
  constructor(detail: string) {
    super(`fulfilment answered 2xx with ${detail}; will retry`);
    this.name = "BadFulfilmentAnswerError";
  }
}

/**
 * How much a 2xx answer settles: `{ "amount": n }` with an integer 1 ≤ n ≤ the hold's amount
 * settles n; no body, or a body with no `amount`, settles the whole hold (undefined). Any other
 * `amount`, or a body too long to read, is a bad answer.
 */
function settleAmount(answer: FulfilmentAnswer, hold: Hold): number | undefined {
  if (answer.oversized) throw new BadFulfilmentAnswerError("a body too long to read");
  const body = answer.body;
  if (body === null || typeof body !== "object" || !("amount" in body)) return undefined;
  const { amount } = body;
  if (
    typeof amount === "number" &&
    Number.isSafeInteger(amount) &&
    amount >= 1 &&
    amount <= hold.amount
  )
    return amount;
  throw new BadFulfilmentAnswerError(
    `amount ${JSON.stringify(amount)?.slice(0, 40)}, not an integer in [1, ${hold.amount}]`,
  );
}

function refusalReason(body: unknown, status: number): string {
  const reason = (body as { reason?: unknown } | null)?.reason;
  return typeof reason === "string" && reason.trim() !== ""
    ? reason.slice(0, MAX_REASON_LENGTH)
    : `fulfilment refused: HTTP ${status}`;
}

/** A settle or release that lost the race to another resolution is not a failure of the job. */
async function unlessResolved<T>(action: Promise<T>): Promise<T | undefined> {
  try {
    return await action;
  } catch (error) {
    if (isDomainError(error) && error.code === "hold_not_pending") return undefined;
    throw error;
  }
}

/**
 * The fulfil job: asks the fulfilment webhook whether the purchase went through and settles
 * or releases the hold accordingly. Running it twice, or racing a settle/release call, never
 * posts twice: settleHold and releaseHold are conditional updates on the hold's status, and the
 * loser of a race is treated as done. Retryable answers throw so that BullMQ retries with
 * backoff; once the hold is no longer pending, or its deadline has passed, the job stops.
 */
export function fulfilHoldProcessor(deps: {
  db: Db;
  fulfilment: FulfilmentConfig;
  logger: Logger;
  /** How a successful answer settles the hold; the worker passes a batched settle. */
  settle?: (input: SettleInput) => Promise<Hold>;
  /** How the hold is read; the worker passes a batched look-up. */
  find?: (holdId: string) => Promise<Hold | undefined>;
  /** Called once the job settled or released its hold: the worker removes its expire job. */
  resolved?: (holdId: string) => Promise<void>;
}) {
  const { db, fulfilment, logger } = deps;
  const settle = deps.settle ?? ((input: SettleInput) => settleHold(db, input));
  const find = deps.find ?? ((holdId: string) => findHold(db, holdId));
  // Best effort: an expire job left behind finds the hold resolved and does nothing.
  const forget = (holdId: string) =>
    (deps.resolved?.(holdId) ?? Promise.resolve()).catch((err) =>
      logger.warn({ err, holdId }, "could not remove the expire job of a resolved hold"),
    );
  return async (job: Pick<Job, "data">): Promise<FulfilResult> => {
    const { holdId } = parsePayload(HoldJobData, job.data);
    const hold = await find(holdId);
    if (!hold) return { outcome: "skipped", why: "missing" };
    if (hold.status !== "pending") return { outcome: "skipped", why: hold.status };
    // Past the deadline the hold belongs to the expire job: asking for fulfilment now could
    // deliver goods for a hold that is about to expire.
    if (Date.now() >= Date.parse(hold.expiresAt)) return { outcome: "skipped", why: "deadline" };

    const answer = await postFulfilment(fulfilment, hold);
    if (answer.status >= 200 && answer.status < 300) {
      const settled = await unlessResolved(settle({ holdId, amount: settleAmount(answer, hold) }));
      if (!settled) {
        const now = await find(holdId);
        logger.warn(
          { holdId, status: now?.status },
          "fulfilment succeeded but the hold was already resolved",
        );
        return { outcome: "skipped", why: now?.status ?? "missing" };
      }
      await forget(holdId);
      return { outcome: "settled", settledAmount: settled.settledAmount ?? hold.amount };
    }
    const retryable =
      answer.status === 408 || answer.status === 429 || answer.status < 400 || answer.status >= 500;
    if (retryable) throw new RetryableFulfilmentError(answer.status);
    const reason = refusalReason(answer.body, answer.status);
    const released = await unlessResolved(releaseHold(db, { holdId, reason }));
    if (!released) return { outcome: "skipped", why: "resolved" };
    await forget(holdId);
    return { outcome: "released", reason: released.reason ?? reason };
  };
}
