import { type BenchContext, log } from "../lib/context.ts";
import { type LoadResult, measuredLoad, runLoad } from "../lib/load.ts";
import { quiesce } from "../lib/target.ts";

/**
 * Scenario 5: GET /v1/accounts/{id} under autocannon on a fresh `holdfast serve`, for an
 * account whose history has `entries` entries. A read that is O(1) in the history gives the
 * same latency for 1,000 and 1,000,000 entries.
 */
export async function balanceReads(
  ctx: BenchContext,
  account: string,
  entries: number,
): Promise<LoadResult> {
  const { config, target } = ctx;
  await quiesce(target);
  const api = await target.api(`reads-${entries}`);
  try {
    const load = (durationS: number) =>
      runLoad(
        {
          url: api.baseUrl,
          method: "GET",
          path: `/v1/accounts/${account}`,
          token: config.serviceToken,
          connections: config.connections,
          durationS,
        },
        200,
      );
    log(`balance reads (${entries} entries): warm-up ${config.warmupS}s`);
    await load(config.warmupS);
    log(
      `balance reads (${entries} entries): ${config.connections} connections for ${config.readDurationS}s`,
    );
    return await measuredLoad(api.pid, () => load(config.readDurationS));
  } finally {
    await api.stop();
  }
}
