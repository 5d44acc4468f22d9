import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "../logger.ts";
import type { ExpireJobResult } from "./expire-job.ts";
import type { FulfilResult } from "./fulfil-hold.ts";
import type { HoldJobData } from "./queues.ts";

/** `4m12s`, `-35s`: how far a deadline is. */
function until(iso: string | undefined, now: number): string {
  if (!iso) return "unknown";
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const a = Math.abs(s);
  const text = a >= 60 ? `${Math.floor(a / 60)}m${String(a % 60).padStart(2, "0")}s` : `${a}s`;
  return s < 0 ? `${text} ago` : `in ${text}`;
}

/** The first line of an attempt: which attempt, the hold's deadline, and where to look. */
export function attemptLine(job: Pick<Job, "attemptsMade" | "opts" | "data">, now = Date.now()) {
  const data = job.data as Partial<HoldJobData>;
  return [
    `attempt ${job.attemptsMade + 1} of ${job.opts.attempts ?? 1}`,
    `deadline ${data.expiresAt ?? "?"} (${until(data.expiresAt, now)})`,
    `hold /v1/holds/${data.holdId}`,
    `panel /admin/holds?account=${encodeURIComponent(data.accountId ?? "")}`,
  ].join(" · ");
}

export function fulfilOutcomeLine(result: FulfilResult, job: Pick<Job, "data">): string {
  switch (result.outcome) {
    case "settled":
      return `settled ${result.settledAmount} of ${(job.data as Partial<HoldJobData>).amount}`;
    case "released":
      return `REFUSED by fulfilment: ${result.reason} (hold released)`;
    case "skipped":
      return `skipped: ${result.why === "deadline" ? "past the deadline, left to expiry" : `hold ${result.why}`}`;
  }
}

export function expireOutcomeLine(result: ExpireJobResult): string {
  return result.outcome === "expired" ? "expired" : `nothing to do: hold ${result.outcome}`;
}

/**
 * Wraps a hold job's processor so that each attempt writes its lines to the job's log (the
 * dashboard's Logs tab): the attempt, then its outcome or its error. A refusal by the
 * fulfilment webhook is also the job's progress, { outcome: "refused", reason } (bull-board's
 * Progress tab); in the list, jobTitle (src/http/dashboard.ts) marks it in the job's title.
 * Writing the log is best effort: a Redis error there never changes what the attempt did.
 */
export function withJobLog<R extends FulfilResult | ExpireJobResult>(
  processor: (job: Job, token?: string) => Promise<R>,
  outcomeLine: (result: R, job: Job) => string,
  logger: Logger,
) {
  return async (job: Job, token?: string): Promise<R> => {
    const log = (line: string) =>
      job
        .log(line)
        .catch((err) => logger.warn({ err, jobId: job.id }, "could not write a job log line"));
    await log(attemptLine(job));
    try {
      const result = await processor(job, token);
      await log(outcomeLine(result, job));
      if (result.outcome === "released")
        await job
          .updateProgress({ outcome: "refused", reason: result.reason })
          .catch((err) => logger.warn({ err, jobId: job.id }, "could not mark a refused job"));
      return result;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // BullMQ never retries an UnrecoverableError, whatever attempts remain.
      const left =
        error instanceof UnrecoverableError ? 0 : (job.opts.attempts ?? 1) - job.attemptsMade - 1;
      await log(
        error instanceof DelayedError
          ? `put back: ${message}`
          : `failed: ${message}; ${left > 0 ? `${left} attempt(s) left` : "no attempt left"}`,
      );
      throw error;
    }
  };
}
