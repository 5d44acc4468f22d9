import { type BenchContext, log } from "../lib/context.ts";
import {
  benchDatabaseName,
  connect,
  createMigrated,
  dropDatabase,
  seedAccounts,
} from "../lib/database.ts";
import type { LoadResult } from "../lib/load.ts";
import { ownTarget } from "../lib/target.ts";
import { holdPlacements } from "./hold-placements.ts";

/**
 * What the events outbox costs hold placements: the spread load on a fresh database seeded like
 * the main one, with events written (the default) or with HOLDFAST_EVENTS=off. The two runs
 * follow each other, each on its own database, so that neither pays for the other's rows and
 * the main database, which `holdfast verify` checks at the end, has no change without its event.
 */
export async function outboxCost(ctx: BenchContext, events: "on" | "off"): Promise<LoadResult> {
  const { config, ids } = ctx;
  const spread = Array.from({ length: config.spreadAccounts }, (_, i) => ids.spread(i + 1));
  const name = benchDatabaseName(config, `events_${events}`);
  try {
    log(`outbox cost (events ${events}): scratch database ${name}`);
    const url = await createMigrated(config, name);
    await seedAccounts(url, { ids: spread, credits: 1, amount: 1e12 });
    const sql = connect(url);
    await sql`VACUUM (ANALYZE)`.finally(() => sql.end());
    return await holdPlacements({ ...ctx, target: ownTarget(config, url) }, "spread", {
      name: `events ${events}`,
      env: { HOLDFAST_EVENTS: events },
    });
  } finally {
    await dropDatabase(config, name);
  }
}
