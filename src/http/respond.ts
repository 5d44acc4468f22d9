import type { Context, TypedResponse } from "hono";
import { isDomainError } from "../ledger/errors.ts";
import type { AppEnv } from "./context.ts";
import { stringify } from "./json.ts";
import { PROBLEM_CONTENT_TYPE, problem } from "./problem.ts";

/** A response as stored for idempotent replay: status and the exact body text. */
export interface Rendered {
  status: number;
  body: string;
}

export const contentTypeFor = (status: number) =>
  status >= 400 ? PROBLEM_CONTENT_TYPE : "application/json";

// biome-ignore lint/suspicious/noExplicitAny: bodies are typed by the domain, not by Hono
export type Sent = Response & TypedResponse<any, any, "json">;

/**
 * Every body goes out as the exact text that is stored for replay, so routes answer with
 * c.body rather than c.json; the return type lets typed routes accept that.
 */
export function send(
  c: Context<AppEnv>,
  rendered: Rendered,
  extra: Record<string, string> = {},
): Sent {
  return c.body(rendered.body, rendered.status as 200, {
    "Content-Type": contentTypeFor(rendered.status),
    ...extra,
  }) as unknown as Sent;
}

export const render = (status: number, payload: unknown): Rendered => ({
  status,
  body: stringify(payload),
});

/** Runs a domain verb and renders its result, or the business error it raised, as a response. */
export async function renderOutcome<T>(
  requestId: string,
  status: number,
  verb: () => Promise<T>,
): Promise<Rendered> {
  try {
    return render(status, await verb());
  } catch (error) {
    if (!isDomainError(error)) throw error;
    const p = problem(error.code, error.message, requestId);
    return render(p.status, p);
  }
}
