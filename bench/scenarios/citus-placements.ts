import {
  type BatchSizes,
  batchSizes,
  citusNodes,
  createCitusDatabase,
  dropCitusDatabase,
  holdWrites,
  pgNodes,
  type ShardWrites,
} from "../lib/citus.ts";
import { type BenchContext, log } from "../lib/context.ts";
import {
  benchDatabaseName,
  connect,
  createMigrated,
  dropDatabase,
  seedAccounts,
  urlOn,
} from "../lib/database.ts";
import type { LoadResult } from "../lib/load.ts";
import { whenSlotFree } from "../lib/retry.ts";
import { ownTarget } from "../lib/target.ts";
import { holdPlacements, type Spread } from "./hold-placements.ts";

/** Where the holds go: BENCH_PG_URL's plain Postgres, or the Citus cluster with that many shards. */
export type Backend = { kind: "plain" } | { kind: "citus"; shards: number };

export interface BackendPlacements extends LoadResult {
  /** Shards of the distributed tables; null on plain Postgres. */
  shardCount: number | null;
  /** Holds per transaction during the measurement; undefined when none was counted. */
  batches: BatchSizes | undefined;
}

/** Databases of a scenario still running, dropped by the bench's clean-up on SIGINT/SIGTERM. */
const live = new Map<string, () => Promise<void>>();

export async function dropLiveDatabases(): Promise<void> {
  for (const [name, drop] of live) {
    await drop();
    live.delete(name);
  }
}

/** VACUUM (ANALYZE) and CHECKPOINT on every server of the database, shards included. */
async function quiesceServers(urls: string[]): Promise<void> {
  for (const url of urls) {
    await whenSlotFree("vacuum", async () => {
      const sql = connect(url);
      try {
        await sql`VACUUM (ANALYZE)`;
        await sql`CHECKPOINT`;
      } finally {
        await sql.end();
      }
    });
  }
}

/**
 * Hold placements (scenario 1, the same load) on a fresh database of `backend`, seeded with the
 * accounts that `spread` loads, with its own `holdfast serve`: plain Postgres on BENCH_PG_URL's
 * server, or a database on the Citus cluster distributed by `holdfast migrate` with
 * `citus.shard_count` set to `shards`. The CPU is counted by server (the coordinator, each
 * worker) and the holds per transaction by shard, from the rows' xmin.
 */
export async function placementsOn(
  ctx: BenchContext,
  spread: Spread,
  backend: Backend,
): Promise<BackendPlacements> {
  const { config, ids } = ctx;
  const citus = backend.kind === "citus";
  const name = benchDatabaseName(config, backend.kind);
  const drop = () =>
    citus ? dropCitusDatabase(config, name) : dropDatabase(config, name, config.adminUrl);
  live.set(name, drop);
  try {
    const servers = citus
      ? citusNodes(config).map((node) => ({ name: node.name, url: urlOn(node.url, name) }))
      : [
          {
            name: `postgres :${new URL(config.adminUrl).port || 5432}`,
            url: urlOn(config.adminUrl, name),
          },
        ];
    log(
      `holds (${spread}) on ${citus ? `Citus, ${backend.shards} shards` : "plain Postgres"}: fresh database ${name}`,
    );
    const url = citus
      ? await createCitusDatabase(config, name, backend.shards)
      : await createMigrated(config, name);
    const accounts =
      spread === "hot"
        ? [ids.hot]
        : Array.from({ length: config.spreadAccounts }, (_, i) => ids.spread(i + 1));
    await seedAccounts(url, { ids: accounts, credits: 1, amount: 1e12 });
    await quiesceServers(servers.map((s) => s.url));
    let before: ShardWrites[] = [];
    const load = await holdPlacements({ ...ctx, target: ownTarget(config, url) }, spread, {
      name: citus ? `Citus, ${backend.shards} shards` : "plain, fresh db",
      nodes: await pgNodes(servers),
      afterWarmup: async () => {
        before = await holdWrites(url, citus);
      },
    });
    const batches = batchSizes(before, await holdWrites(url, citus));
    return { ...load, shardCount: citus ? backend.shards : null, batches };
  } finally {
    live.delete(name);
    await drop();
  }
}
