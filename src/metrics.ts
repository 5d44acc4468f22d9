import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { HoldStats } from "./reservations/hold-stats.ts";

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

type HoldGaugeStats = Pick<HoldStats, "pending" | "coinsHeld" | "overdue">;

/** Where the hold gauges read from: the process that has the database and the queues. */
export interface HoldGaugeSource {
  /** holdStats on the process's database: the panel's figures, by the same query. */
  stats: () => Promise<HoldGaugeStats>;
  pauses: () => Promise<{ queue: string; paused: boolean }[]>;
}

let holdGaugeSource: HoldGaugeSource | undefined;
let statsInFlight: Promise<HoldGaugeStats | undefined> | undefined;

/**
 * One holdStats query per scrape, shared by the three gauges that show it (prom-client collects
 * every metric of a scrape concurrently). Undefined when the process has no source or the read
 * failed.
 */
function scrapeHoldStats() {
  if (!holdGaugeSource) return Promise.resolve(undefined);
  statsInFlight ??= holdGaugeSource
    .stats()
    .catch(() => undefined)
    .finally(() => {
      statsInFlight = undefined;
    });
  return statsInFlight;
}

/** A gauge of one holdStats figure; NaN while the database cannot answer, not a stale value. */
const holdStatGauge = (name: string, help: string, pick: (s: HoldGaugeStats) => number) => {
  const gauge: Gauge = new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      if (!holdGaugeSource) return;
      const stats = await scrapeHoldStats();
      gauge.set(stats ? pick(stats) : Number.NaN);
    },
  });
  return gauge;
};

export const holdsPending = holdStatGauge(
  "holdfast_holds_pending",
  "Pending holds (from Postgres)",
  (s) => s.pending,
);
export const coinsHeld = holdStatGauge(
  "holdfast_coins_held",
  "Coins reserved by pending holds (from Postgres)",
  (s) => Number(s.coinsHeld),
);
export const holdsOverdue = holdStatGauge(
  "holdfast_holds_overdue",
  "Pending holds past their deadline: expiry is behind (from Postgres)",
  (s) => s.overdue,
);

/** 1 while a hold queue is paused (BullMQ's flag); a paused expire or sweep stops expiry. */
export const queuePaused = new Gauge({
  name: "holdfast_queue_paused",
  help: "1 while the hold queue is paused",
  labelNames: ["queue"] as const,
  registers: [registry],
  async collect() {
    if (!holdGaugeSource) return;
    try {
      for (const { queue, paused } of await holdGaugeSource.pauses())
        queuePaused.set({ queue }, paused ? 1 : 0);
    } catch {
      queuePaused.reset();
    }
  },
});

/** Makes the hold gauges read `source` on each scrape; returns the removal. */
export function collectHoldGauges(source: HoldGaugeSource): () => void {
  holdGaugeSource = source;
  return () => {
    if (holdGaugeSource === source) holdGaugeSource = undefined;
  };
}
