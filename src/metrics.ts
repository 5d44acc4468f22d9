import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** One registry per process, shared by the API and the workers when they run together. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const httpDuration = new Histogram({
  name: "holdfast_http_request_duration_seconds",
  help: "HTTP request latency by method, route and status",
  labelNames: ["method", "route", "status"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

const holdCounter = (verb: string) =>
  new Counter({
    name: `holdfast_holds_${verb}_total`,
    help: `Holds ${verb}`,
    registers: [registry],
  });

/** The pending counts of each scope (a transaction, a savepoint) whose counts wait for a commit. */
const deferred = new WeakMap<object, (() => void)[]>();

/**
 * Counts a change to a hold made through `scope` (the Db the verb ran on): at once, or, when
 * `scope` is covered by DeferredCounts, when its transaction commits, so that a batch that
 * rolls back and is retried request by request counts once.
 */
export function count(scope: object, counter: Counter, n = 1): void {
  const pending = deferred.get(scope);
  if (pending) pending.push(() => counter.inc(n));
  else counter.inc(n);
}

/**
 * The counts of one transaction: made through the scopes it covers, applied by commit(); if
 * the transaction rolls back, commit() is never called and they are dropped with this object.
 * A savepoint gets its own, absorbed by the transaction's once the savepoint is released.
 * An explicit scope rather than AsyncLocalStorage, whose promise hooks cost every promise of
 * the process (a few per cent of the API's CPU).
 */
export class DeferredCounts {
  private readonly pending: (() => void)[] = [];

  cover(scope: object): void {
    deferred.set(scope, this.pending);
  }

  /** The counts of a released savepoint: they now wait for this transaction's commit. */
  absorb(savepoint: DeferredCounts): void {
    this.pending.push(...savepoint.pending.splice(0));
  }

  commit(): void {
    for (const apply of this.pending.splice(0)) apply();
  }
}

export const holdsPlaced = holdCounter("placed");
export const holdsSettled = holdCounter("settled");
export const holdsReleased = holdCounter("released");
export const holdsExpired = holdCounter("expired");

const depthCollectors = new Set<() => Promise<void>>();

/** Refreshed on each scrape by the collectors the process registered (see collectQueueDepth). */
export const queueDepth = new Gauge({
  name: "holdfast_queue_jobs",
  help: "Jobs in each hold queue by state",
  labelNames: ["queue", "state"] as const,
  registers: [registry],
  async collect() {
    await Promise.allSettled([...depthCollectors].map((collect) => collect()));
  },
});

/** Registers a scrape-time refresh of `queueDepth`; returns its removal. */
export function onQueueDepthScrape(collect: () => Promise<void>): () => void {
  depthCollectors.add(collect);
  return () => depthCollectors.delete(collect);
}
