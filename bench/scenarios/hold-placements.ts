import { type BenchContext, log } from "../lib/context.ts";
import type { PgNode } from "../lib/cpu.ts";
import { type LoadResult, measuredLoad, runLoad } from "../lib/load.ts";
import { quiesce } from "../lib/target.ts";

export type Spread = "spread" | "hot";

/** Beyond the bench's length, so neither expire jobs nor the sweep touch these holds. */
const EXPIRES_IN_SECONDS = 604_800;

export interface Variant {
  name: string;
  env?: Record<string, string>;
  /** Postgres servers whose processes the CPU figures count apart (see withCpu). */
  nodes?: PgNode[];
  /** Runs between the warm-up and the measurement (a snapshot to subtract afterwards). */
  afterWarmup?: () => Promise<void>;
}

/**
 * Scenario 1: POST /v1/purchases under autocannon, every request with its own Idempotency-Key,
 * on a fresh `holdfast serve`. "spread" picks one of the funded accounts at random per request;
 * "hot" puts every hold on one account, so they all queue on its row lock.
 */
export async function holdPlacements(
  ctx: BenchContext,
  spread: Spread,
  variant?: Variant,
): Promise<LoadResult> {
  const { config, target, ids } = ctx;
  await quiesce(target);
  const name = variant ? `${spread}, ${variant.name}` : spread;
  const api = await target.api(`holds-${spread}${variant ? "-variant" : ""}`, variant?.env);
  try {
    const body =
      spread === "hot"
        ? () => ({ accountId: ids.hot, amount: 1, expiresInSeconds: EXPIRES_IN_SECONDS })
        : () => ({
            accountId: ids.spread(1 + Math.floor(Math.random() * config.spreadAccounts)),
            amount: 1,
            expiresInSeconds: EXPIRES_IN_SECONDS,
          });
    const load = (durationS: number) =>
      runLoad(
        {
          url: api.baseUrl,
          method: "POST",
          path: "/v1/purchases",
          token: config.serviceToken,
          connections: config.connections,
          durationS,
          body,
          idempotencyKeys: true,
        },
        201,
      );
    log(`holds (${name}): warm-up ${config.warmupS}s`);
    await load(config.warmupS);
    await variant?.afterWarmup?.();
    log(`holds (${name}): ${config.connections} connections for ${config.durationS}s`);
    return await measuredLoad(api.pid, () => load(config.durationS), variant?.nodes);
  } finally {
    await api.stop();
  }
}
