import { type BenchContext, log } from "../lib/context.ts";
import { type LoadResult, measuredLoad, runLoad } from "../lib/load.ts";
import { startLocalServer } from "../lib/servers.ts";

/**
 * Scenario 3: the HTTP limit of this machine and load generator: the same autocannon load as
 * the hold placements (same body, same per-request Idempotency-Key) against a node:http server
 * in its own process that answers 201 with a small JSON body and does nothing else.
 */
export async function httpLimit(ctx: BenchContext): Promise<LoadResult> {
  const { config, ids } = ctx;
  const server = await startLocalServer("bare-http");
  try {
    const load = (durationS: number) =>
      runLoad(
        {
          url: server.url,
          method: "POST",
          path: "/v1/purchases",
          token: config.serviceToken,
          connections: config.connections,
          durationS,
          body: () => ({
            accountId: ids.spread(1 + Math.floor(Math.random() * config.spreadAccounts)),
            amount: 1,
            expiresInSeconds: 604_800,
          }),
          idempotencyKeys: true,
        },
        201,
      );
    log(`HTTP limit: warm-up ${config.warmupS}s`);
    await load(config.warmupS);
    log(`HTTP limit: ${config.connections} connections for ${config.durationS}s`);
    return await measuredLoad(server.child.process.pid, () => load(config.durationS));
  } finally {
    await server.child.stop();
  }
}
