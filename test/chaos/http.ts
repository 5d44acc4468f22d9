import type { Cluster, Member } from "./cluster.ts";
import type { Rng } from "./random.ts";

export interface Request {
  method: "GET" | "POST";
  path: string;
  token: string;
  body?: unknown;
  key?: string;
}

/** A definite answer: a 2xx or a 4xx (other than 409 idempotency_key_in_use, which is "later"). */
export interface Answer {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: the checks read arbitrary response fields
  json: any;
  replayed: boolean;
  instance: string;
  attempts: number;
}

export interface HttpStats {
  requests: number;
  retries: number;
  /** 503 `unavailable` answers. */
  unavailable: number;
  /** 409 idempotency_key_in_use answers (retried). */
  keyInUse: number;
  /** Network errors by cause (connection refused or reset, socket closed, timeout). */
  networkErrors: Record<string, number>;
  /** Any other 5xx: always a defect. */
  otherServerErrors: number;
  /** Operations that got no definite answer within their retry budget. */
  gaveUp: number;
  /** Attempts that had no answer within ATTEMPT_TIMEOUT_MS: an API that hangs instead of 503. */
  timeouts: string[];
}

export const newHttpStats = (): HttpStats => ({
  requests: 0,
  retries: 0,
  unavailable: 0,
  keyInUse: 0,
  networkErrors: {},
  otherServerErrors: 0,
  gaveUp: 0,
  timeouts: [],
});

const ATTEMPT_TIMEOUT_MS = 20_000;

function causeOf(error: unknown): string {
  const e = error as { name?: string; code?: unknown; cause?: { code?: unknown; name?: string } };
  if (e.name === "TimeoutError") return "TimeoutError";
  const code = e.cause?.code ?? e.code;
  return typeof code === "string" ? code : (e.cause?.name ?? e.name ?? "unknown");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends requests the way a careful client of a payments API does: on a network error, a 5xx or
 * 409 idempotency_key_in_use it retries the SAME request (same Idempotency-Key, same body) on
 * another live instance, with jittered exponential backoff, until it has a definite answer or
 * `budgetMs` has passed (then undefined: the outcome is unknown, and the caller re-drives it).
 */
export class ChaosHttp {
  constructor(
    private readonly cluster: Cluster,
    readonly stats: HttpStats,
    readonly defects: string[],
    private readonly log: (line: string) => void,
  ) {}

  private pick(rng: Rng, avoid: Member | undefined): Member | undefined {
    const live = this.cluster.apis;
    const others = live.filter((m) => m !== avoid);
    const choices = others.length > 0 ? others : live;
    return choices.length > 0 ? rng.pick(choices) : undefined;
  }

  async send(request: Request, rng: Rng, budgetMs: number): Promise<Answer | undefined> {
    const deadline = Date.now() + budgetMs;
    const headers: Record<string, string> = { authorization: `Bearer ${request.token}` };
    if (request.key !== undefined) headers["idempotency-key"] = request.key;
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    if (body !== undefined) headers["content-type"] = "application/json";
    let last: Member | undefined;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        this.stats.retries++;
        if (Date.now() > deadline) {
          this.stats.gaveUp++;
          return undefined;
        }
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 10)) * (0.5 + rng.next()));
      }
      const api = this.pick(rng, last);
      last = api;
      if (!api) continue;
      this.stats.requests++;
      api.inFlight++;
      try {
        const res = await fetch(`${api.baseUrl}${request.path}`, {
          method: request.method,
          headers,
          body,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        const text = await res.text();
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const code = (json as { code?: string } | undefined)?.code;
        if (res.status === 503) {
          this.stats.unavailable++;
          const type = res.headers.get("content-type") ?? "";
          if (code !== "unavailable" || !type.startsWith("application/problem+json"))
            this.defects.push(
              `${request.method} ${request.path} on ${api.name}: 503 without code unavailable: ${text.slice(0, 300)}`,
            );
          continue;
        }
        if (res.status >= 500) {
          this.stats.otherServerErrors++;
          this.defects.push(
            `${request.method} ${request.path} on ${api.name}: HTTP ${res.status} ${text.slice(0, 500)}`,
          );
          continue;
        }
        if (res.status === 409 && code === "idempotency_key_in_use") {
          this.stats.keyInUse++;
          continue;
        }
        return {
          status: res.status,
          text,
          json,
          replayed: res.headers.get("idempotent-replayed") === "true",
          instance: api.name,
          attempts: attempt,
        };
      } catch (error) {
        const cause = causeOf(error);
        this.stats.networkErrors[cause] = (this.stats.networkErrors[cause] ?? 0) + 1;
        if (cause === "TimeoutError") {
          this.stats.timeouts.push(
            `${request.method} ${request.path} on ${api.name} at ${new Date().toISOString()}`,
          );
          this.log(`${request.method} ${request.path} on ${api.name} timed out; retrying`);
        }
      } finally {
        api.inFlight--;
      }
    }
  }
}
