import { DelayedError, type Job } from "bullmq";
import type { Db } from "../db/client.ts";
import { expireHold } from "../reservations/release-hold.ts";
import { HoldJobData, parsePayload } from "./queues.ts";

/**
 * When the worker's clock runs ahead of Postgres's, the job arrives before the hold is due by
 * the database's clock; it is put back until then, at least this much later.
 */
const MIN_REDELAY_MS = 1000;

export type ExpireJobResult = { outcome: "expired" | "resolved" | "missing" };

/**
 * Expires the job's hold. A hold already settled, released or expired (by an API call, the
 * sweep, or an earlier run of this job) is success: the conditional update in expireHold lets
 * exactly one of them win.
 */
export function expireJobProcessor(db: Db) {
  return async (
    job: Pick<Job, "data" | "moveToDelayed">,
    token?: string,
  ): Promise<ExpireJobResult> => {
    const { holdId } = parsePayload(HoldJobData, job.data);
    const result = await expireHold(db, holdId);
    if (result.kind !== "not_due") return { outcome: result.kind };
    const due = Math.max(Date.parse(result.hold.expiresAt), Date.now() + MIN_REDELAY_MS);
    await job.moveToDelayed(due, token);
    throw new DelayedError(`hold ${holdId} is not due yet by the database clock`);
  };
}
