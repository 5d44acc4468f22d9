import type fc from "fast-check";
import { expect } from "vitest";
import type { TestApp } from "./app.ts";
import {
  BUSINESS_CODES,
  CONTRACT_CODES,
  ROUTES,
  type RouteName,
  validIdempotencyKey,
} from "./fuzz-contract.ts";

/** A request exactly as it goes on the wire. */
export interface WireRequest {
  method: "GET" | "POST";
  /** Already encoded: it is appended to the origin as is. */
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | undefined;
}

interface WireResponse {
  status: number;
  headers: Headers;
  text: string;
}

async function send(t: TestApp, req: WireRequest): Promise<WireResponse> {
  const request = new Request(`http://localhost${req.path}`, {
    method: req.method,
    headers: req.headers,
    body: req.body,
  });
  const res = await t.app.request(request);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/**
 * Row counts and balances that a refused request must leave exactly as they were. Cheap on a
 * small database, so it is taken after every request: a write is pinned to the request that
 * made it.
 */
async function snapshot(t: TestApp): Promise<Record<string, string | number>> {
  const [row] = await t.db.sql`
    SELECT (SELECT count(*) FROM accounts)::int AS accounts,
           (SELECT count(*) FROM entries)::int AS entries,
           (SELECT count(*) FROM ledger_transactions)::int AS ledger_transactions,
           (SELECT count(*) FROM holds)::int AS holds,
           (SELECT count(*) FROM holds WHERE status = 'pending')::int AS pending_holds,
           (SELECT count(*) FROM idempotency_keys)::int AS idempotency_keys,
           (SELECT count(*) FROM promotions)::int AS promotions,
           (SELECT count(*) FROM redemptions)::int AS redemptions,
           (SELECT count(*) FROM refunds)::int AS refunds,
           (SELECT count(*) FROM events)::int AS events,
           (SELECT coalesce(sum(refunded_amount), 0) FROM holds)::text AS refunded,
           (SELECT coalesce(string_agg(concat_ws(':', bucket, promotion_code, allotted, redeemed), ','
                                       ORDER BY bucket, promotion_code), '')
              FROM promotion_allotments) AS promotion_allotments,
           (SELECT coalesce(sum(settled), 0) FROM accounts)::text AS settled,
           (SELECT coalesce(sum(held), 0) FROM accounts)::text AS held,
           (SELECT coalesce(sum(last_seq), 0) FROM accounts)::text AS last_seq,
           (SELECT coalesce(sum(settled), 0) FROM accounts WHERE kind = 'system')::text AS system_balances`;
  return row as Record<string, string | number>;
}

function changed(before: Record<string, string | number>, after: Record<string, string | number>) {
  const diff: Record<string, string> = {};
  for (const k of Object.keys(after)) {
    if (before[k] !== after[k]) diff[k] = `${before[k]} → ${after[k]}`;
  }
  return diff;
}

const show = (req: WireRequest, res?: WireResponse) => {
  const body =
    req.body instanceof Uint8Array
      ? `bytes[${req.body.length}]`
      : req.body === undefined
        ? "(none)"
        : JSON.stringify(req.body.length > 300 ? `${req.body.slice(0, 300)}…` : req.body);
  const out = res ? `\n→ ${res.status} ${res.text.slice(0, 400)}` : "";
  return `${req.method} ${req.path.slice(0, 300)}\nheaders ${JSON.stringify(req.headers).slice(0, 400)}\nbody ${body}${out}`;
};

/**
 * Sends requests and checks the three fuzzing properties on each: (a) never 5xx; (b) every 4xx
 * is a contract problem+json; (c) a 4xx writes nothing (bar the stored key of a business
 * refusal). A 2xx must have the route's success status and shape.
 */
export class Checker {
  /** status counts per route, to show (and assert) what the generators reached. */
  readonly tally = new Map<RouteName, Map<number, number>>();
  private last: Record<string, string | number> = {};

  constructor(private readonly t: TestApp) {}

  async start() {
    this.last = await snapshot(this.t);
  }

  count(route: RouteName, predicate: (status: number) => boolean): number {
    let n = 0;
    for (const [status, c] of this.tally.get(route) ?? []) if (predicate(status)) n += c;
    return n;
  }

  /** Returns the status and parsed body so that a property can add its own oracle. */
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  async check(name: RouteName, req: WireRequest): Promise<{ status: number; json: any }> {
    const route = ROUTES[name];
    const res = await send(this.t, req);
    const byStatus = this.tally.get(name) ?? new Map<number, number>();
    byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
    this.tally.set(name, byStatus);
    // Taken before any assertion, so that a failing run does not skew the next one's diff.
    const after = await snapshot(this.t);
    const before = this.last;
    this.last = after;
    const context = show(req, res);
    expect(res.status, `(a) never 5xx\n${context}`).toBeLessThan(500);
    expect([2, 4], `only 2xx or 4xx\n${context}`).toContain(Math.floor(res.status / 100));
    // The app runs in this process: a "__proto__" member that reached an assignment shows here.
    expect(Object.keys(Object.prototype), `no prototype pollution\n${context}`).toEqual([]);
    // biome-ignore lint/suspicious/noExplicitAny: see above
    let json: any;
    try {
      json = JSON.parse(res.text);
    } catch {
      expect.fail(`the body is not JSON\n${context}`);
    }
    if (res.status >= 400) {
      expect(res.headers.get("content-type"), `(b) problem+json\n${context}`).toBe(
        "application/problem+json",
      );
      expect(json, `(b) problem fields\n${context}`).toMatchObject({
        type: expect.any(String),
        title: expect.any(String),
        status: res.status,
        detail: expect.any(String),
        code: expect.any(String),
        requestId: expect.stringMatching(/./),
      });
      expect(
        CONTRACT_CODES[res.status],
        `(b) a contract code for ${res.status}\n${context}`,
      ).toContain(json.code);
      if (json.errors !== undefined) {
        expect(json.errors.length, `(b) errors[] is not empty\n${context}`).toBeGreaterThan(0);
        for (const e of json.errors) {
          expect(e, `(b) errors[] items\n${context}`).toEqual({
            field: expect.any(String),
            message: expect.any(String),
          });
        }
      }
      const storesKey =
        route.method === "POST" &&
        BUSINESS_CODES.has(json.code) &&
        validIdempotencyKey(req.headers["idempotency-key"]) &&
        res.headers.get("idempotent-replayed") === null;
      const allowed = storesKey
        ? {
            idempotency_keys: `${before.idempotency_keys} → ${Number(before.idempotency_keys) + 1}`,
          }
        : {};
      expect(changed(before, after), `(c) a ${res.status} wrote nothing\n${context}`).toEqual(
        allowed,
      );
    } else {
      expect(res.status, `success status\n${context}`).toBe(route.status);
      expect(res.headers.get("content-type"), context).toMatch(/^application\/json/);
      const parsed = route.body.safeParse(json);
      expect(parsed.error?.issues ?? [], `success shape\n${context}`).toEqual([]);
    }
    return { status: res.status, json };
  }
}

/**
 * fast-check prints `{ seed, path }` on failure; FC_SEED=<seed> FC_PATH=<path> replays that
 * run without editing the test.
 */
export function runParameters<T>(numRuns: number): fc.Parameters<T> {
  const seed = process.env.FC_SEED;
  if (seed === undefined) return { numRuns };
  const path = process.env.FC_PATH;
  return path === undefined
    ? { numRuns, seed: Number(seed) }
    : { numRuns, seed: Number(seed), path, endOnFailure: true };
}
