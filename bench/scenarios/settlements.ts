import { setTimeout as sleep } from "node:timers/promises";
import type { Child } from "../lib/children.ts";
import { type BenchContext, log } from "../lib/context.ts";
import { type CpuUse, withCpu } from "../lib/cpu.ts";
import { connect } from "../lib/database.ts";
import { startWorker } from "../lib/holdfast.ts";
import { type LoadResult, runLoad } from "../lib/load.ts";
import { startLocalServer } from "../lib/servers.ts";
import { quiesce } from "../lib/target.ts";

export interface SettlementResult {
  placed: LoadResult;
  settled: number;
  /** Holds of the batch not settled when the bench stopped waiting (pending, released, …). */
  unsettled: number;
  settlesPerSecond: number;
  /** From the first to the last settlement, by the holds' resolved_at. */
  spanS: number;
  /** From the worker reporting ready to the first settlement. */
  firstAfterS: number;
  deliveries: number | undefined;
  /** Per settled hold, from the worker reporting ready until none was pending. */
  cpu: CpuUse | undefined;
}

/** The bench stops waiting when no hold has settled for this long. */
const STALL_MS = 30_000;

/** Waits until no hold of the batch is pending, or none settles for STALL_MS; answers how many settled. */
async function drain(
  sql: ReturnType<typeof connect>,
  orderId: string,
  worker: Child,
): Promise<number> {
  let last = -1;
  let progressAt = Date.now();
  for (;;) {
    const [row] = await sql<{ settled: number; pending: number }[]>`
      SELECT count(*) FILTER (WHERE status = 'settled')::int AS settled,
             count(*) FILTER (WHERE status = 'pending')::int AS pending
        FROM holds WHERE order_id = ${orderId}`;
    if (row!.pending === 0) return row!.settled;
    if (row!.settled !== last) {
      last = row!.settled;
      progressAt = Date.now();
    } else if (Date.now() - progressAt > STALL_MS) {
      log(`settlements: no progress for ${STALL_MS / 1000}s, ${row!.pending} still pending`);
      return row!.settled;
    }
    if (worker.process.exitCode !== null) throw new Error(`worker exited:\n${worker.output()}`);
    await sleep(500);
  }
}

/**
 * Scenario 4: settlements through `holdfast worker` and the fulfilment webhook. A `serve` with
 * FULFILMENT_URL places N holds (each enqueues its fulfil job) and stops; then one worker
 * process starts against a stub that approves everything, and drains the backlog. The rate is
 * settled holds over the span of their resolved_at timestamps, so it measures the worker, not
 * the placement rate or the worker's start-up.
 */
export async function settlements(ctx: BenchContext): Promise<SettlementResult> {
  const { config, target, ids } = ctx;
  const databaseUrl = target.databaseUrl;
  if (!target.own || !databaseUrl) throw new Error("settlements need a holdfast the bench starts");
  const orderId = `bench-settle-${config.runId}`;
  const stub = await startLocalServer("fulfilment-stub");
  const sql = connect(databaseUrl);
  try {
    const api = await target.api("settle", { FULFILMENT_URL: stub.url });
    let placed: LoadResult;
    try {
      log(`settlements: placing ${config.settleHolds} holds`);
      placed = await runLoad(
        {
          url: api.baseUrl,
          method: "POST",
          path: "/v1/purchases",
          token: config.serviceToken,
          connections: Math.min(config.connections, config.settleHolds),
          amount: config.settleHolds,
          body: () => ({
            accountId: ids.spread(1 + Math.floor(Math.random() * config.spreadAccounts)),
            amount: 1,
            orderId,
            expiresInSeconds: 604_800,
          }),
          idempotencyKeys: true,
        },
        201,
      );
    } finally {
      await api.stop();
    }
    await quiesce(target);

    log(`settlements: ${placed.ok} holds placed; starting the worker`);
    const worker = await startWorker(config, {
      databaseUrl,
      scenario: "settle",
      // The backlog is the measurement; a sweep re-enqueueing it meanwhile would only add noise.
      extra: { FULFILMENT_URL: stub.url, HOLDFAST_SWEEP_INTERVAL_MS: "3600000" },
    });
    const ready = Date.now();
    let cpu: CpuUse | undefined;
    try {
      ({ cpu } = await withCpu(
        (track) => {
          track("server", worker.process.pid);
          track("bench", stub.child.process.pid);
          return drain(sql, orderId, worker);
        },
        (settled) => settled,
      ));
    } finally {
      await worker.stop();
    }

    const [span] = await sql<{ settled: number; other: number; first: Date; last: Date }[]>`
      SELECT count(*) FILTER (WHERE status = 'settled')::int AS settled,
             count(*) FILTER (WHERE status <> 'settled')::int AS other,
             min(resolved_at) FILTER (WHERE status = 'settled') AS first,
             max(resolved_at) FILTER (WHERE status = 'settled') AS last
        FROM holds WHERE order_id = ${orderId}`;
    const spanS = span!.settled > 1 ? (span!.last.getTime() - span!.first.getTime()) / 1000 : 0;
    await stub.child.stop();
    const deliveries = /"deliveries":(\d+)/.exec(stub.child.output())?.[1];
    return {
      placed,
      settled: span!.settled,
      unsettled: span!.other,
      settlesPerSecond: spanS > 0 ? span!.settled / spanS : 0,
      spanS,
      firstAfterS: span!.first ? (span!.first.getTime() - ready) / 1000 : 0,
      deliveries: deliveries === undefined ? undefined : Number(deliveries),
      cpu,
    };
  } finally {
    await sql.end();
    await stub.child.stop();
  }
}
