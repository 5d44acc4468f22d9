import { sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { BUCKETS } from "./schema/bucket.ts";

/** Which buckets share a shard: batches are made per shard, so each is a single-shard write. */
export interface Shards {
  /** The shard of a bucket; 0 for every bucket on plain Postgres. */
  of(bucket: number): number;
  /**
   * The buckets of each shard, for work done shard by shard, in the order of `homes`; one group
   * of all (undefined) on plain Postgres.
   */
  groups: (number[] | undefined)[];
  /**
   * The home bucket of a bucket's shard: the first bucket of that shard, where rows kept once
   * per shard live (promotion_allotments); 0 on plain Postgres.
   */
  home(bucket: number): number;
  /** The home bucket of every shard, ascending. */
  homes: number[];
}

/** Plain Postgres: one shard holding every bucket. */
export const ONE_SHARD: Shards = { of: () => 0, groups: [undefined], home: () => 0, homes: [0] };

const loaded = new WeakMap<object, Promise<Shards>>();

/**
 * The shards of the database behind `db`, read once per process: on Citus from the placement
 * of `accounts` (every table is colocated with it), on plain Postgres a single shard. A shard
 * split after this read makes batches that span two shards: Citus refuses their row locks, and
 * the write path applies them command by command, so a restart picks the new layout up.
 */
export function shardsOf(db: Db): Promise<Shards> {
  let shards = loaded.get(db);
  if (!shards) {
    shards = readShards(db);
    loaded.set(db, shards);
    shards.catch(() => loaded.delete(db));
  }
  return shards;
}

async function readShards(db: Db): Promise<Shards> {
  const [distributed] = await db.execute<{ yes: boolean }>(sql`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
       AND to_regclass('pg_dist_partition') IS NOT NULL AS yes`);
  if (!distributed?.yes) return ONE_SHARD;
  const rows = await db.execute<{ bucket: number; shard: number }>(sql`
    SELECT b AS bucket, get_shard_id_for_distribution_column('accounts', b)::int8 AS shard
      FROM generate_series(0, ${BUCKETS - 1}::int) AS b`);
  if (rows.length !== BUCKETS)
    throw new Error(`read ${rows.length} bucket placements of ${BUCKETS}`);
  const shardOf = new Array<number>(BUCKETS);
  const groups = new Map<number, number[]>();
  for (const { bucket, shard } of rows) {
    shardOf[bucket] = Number(shard);
    const group = groups.get(Number(shard)) ?? [];
    group.push(bucket);
    groups.set(Number(shard), group);
  }
  // Buckets were read in ascending order: each group's first is its home.
  const ordered = [...groups.values()].sort((a, b) => a[0]! - b[0]!);
  const homeOf = new Map([...groups].map(([shard, buckets]) => [shard, buckets[0]!]));
  return {
    of: (bucket) => shardOf[bucket]!,
    groups: ordered,
    home: (bucket) => homeOf.get(shardOf[bucket]!)!,
    homes: ordered.map((buckets) => buckets[0]!),
  };
}
