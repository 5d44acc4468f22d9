import { readFileSync } from "node:fs";
import postgres from "postgres";
import type { BenchConfig } from "../config.ts";
import type { PgNode } from "./cpu.ts";
import { connect, createMigrated, dropDatabase, dropStaleDatabases, urlOn } from "./database.ts";
import { whenSlotFree } from "./retry.ts";

/** What to run when the local cluster is not up (from the repository's root). */
export const CITUS_UP = "bash ../shared/citus/cluster.sh up";

const address = (url: string) => {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port || 5432) };
};

const label = (url: string) => {
  const { host, port } = address(url);
  return `${host}:${port}`;
};

/** The cluster's nodes, coordinator first: maintenance URLs and names for the tables. */
export function citusNodes(config: BenchConfig): { name: string; url: string }[] {
  return [
    { name: `coordinator :${address(config.citusUrl).port}`, url: config.citusUrl },
    ...config.citusWorkerUrls.map((url) => ({ name: `worker :${address(url).port}`, url })),
  ];
}

/** Runs `fn` on one connection that gives up after a few seconds when the node is down. */
async function onNode<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    connect_timeout: 3,
    connection: { application_name: "holdfast-bench" },
  });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Why the Citus scenarios cannot run (a node does not answer, or has no Citus loaded), with
 * the command that starts the cluster; undefined when every node is ready.
 */
export async function citusUnavailable(config: BenchConfig): Promise<string | undefined> {
  if (config.citusWorkerUrls.length === 0) return "no Citus workers (BENCH_CITUS_WORKER_URLS)";
  for (const node of citusNodes(config)) {
    try {
      const [row] = await onNode(
        node.url,
        (sql) => sql<{ preloaded: boolean }[]>`
          SELECT 'citus' = ANY (string_to_array(
                   replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) AS preloaded`,
      );
      if (!row?.preloaded) {
        return `${node.name} (${label(node.url)}) does not load citus; start the cluster with \`${CITUS_UP}\``;
      }
    } catch (error) {
      const reason = (error as Error).message.split("\n")[0];
      return `Citus is not up (${node.name}, ${label(node.url)}: ${reason}); start it with \`${CITUS_UP}\``;
    }
  }
  return undefined;
}

/** Drops the bench databases a dead run left on any node of the cluster. */
export async function dropStaleCitusDatabases(config: BenchConfig): Promise<string[]> {
  const dropped: string[] = [];
  for (const node of citusNodes(config)) {
    for (const name of await dropStaleDatabases(config, node.url)) {
      dropped.push(`${name} (${node.name})`);
    }
  }
  return dropped;
}

/**
 * A database on every node with the citus extension, the workers registered in the
 * coordinator's, `citus.shard_count` set on it and then migrated by `holdfast migrate`, which
 * distributes the tables with that many shards: what cluster.sh createdb and a deployment do.
 * Answers the coordinator's URL of it.
 */
export async function createCitusDatabase(
  config: BenchConfig,
  name: string,
  shardCount: number,
): Promise<string> {
  for (const node of citusNodes(config)) {
    await whenSlotFree(`create ${name} on ${node.name}`, () =>
      onNode(node.url, (sql) => sql.unsafe(`CREATE DATABASE "${name}"`)),
    );
    await onNode(urlOn(node.url, name), (sql) => sql`CREATE EXTENSION IF NOT EXISTS citus`);
  }
  await onNode(urlOn(config.citusUrl, name), async (sql) => {
    const coordinator = address(config.citusUrl);
    await sql`SELECT citus_set_coordinator_host(${coordinator.host}, ${coordinator.port})`;
    for (const url of config.citusWorkerUrls) {
      const worker = address(url);
      await sql`SELECT citus_add_node(${worker.host}, ${worker.port})`;
    }
    // Read by every later session of the database, so by migrate's create_distributed_table.
    await sql.unsafe(`ALTER DATABASE "${name}" SET citus.shard_count = ${Number(shardCount)}`);
  });
  const url = await createMigrated(config, name, config.citusUrl);
  const [row] = await onNode(
    url,
    (sql) => sql<{ shards: number }[]>`
      SELECT count(*)::int AS shards FROM pg_dist_shard WHERE logicalrelid = 'accounts'::regclass`,
  );
  if (row?.shards !== shardCount) {
    throw new Error(`${name}: accounts has ${row?.shards} shards, not ${shardCount}`);
  }
  return url;
}

/** Drops the database on every node, the coordinator first; tries them all. */
export async function dropCitusDatabase(config: BenchConfig, name: string): Promise<void> {
  const failures: string[] = [];
  for (const node of citusNodes(config)) {
    await dropDatabase(config, name, node.url).catch((error: unknown) =>
      failures.push(`${node.name}: ${(error as Error).message}`),
    );
  }
  if (failures.length > 0) throw new Error(`drop ${name}: ${failures.join("; ")}`);
}

/**
 * The postmaster of the server behind `url`, from postmaster.pid in its data directory, when
 * it runs on this machine and the bench may read that file; undefined otherwise.
 */
export async function postmasterOf(url: string): Promise<number | undefined> {
  try {
    const [row] = await onNode(
      url,
      (sql) => sql<{ dir: string }[]>`SELECT current_setting('data_directory') AS dir`,
    );
    const pid = Number(readFileSync(`${row!.dir}/postmaster.pid`, "utf8").split("\n")[0]);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.includes("(postgres)") ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The Postgres servers whose CPU the CPU table shows by node: those of `servers` found here. */
export async function pgNodes(servers: { name: string; url: string }[]): Promise<PgNode[]> {
  const nodes: PgNode[] = [];
  for (const server of servers) {
    const postmaster = await postmasterOf(server.url);
    if (postmaster !== undefined) nodes.push({ name: server.name, postmaster });
  }
  return nodes;
}

/** Holds and the transactions that wrote them, in one shard (plain Postgres: one, shard 0). */
export interface ShardWrites {
  shard: number;
  holds: number;
  transactions: number;
}

/**
 * Holds per shard and how many transactions inserted them, counted by the rows' xmin: the
 * holds a batch places share the transaction, and a placement bench neither settles nor
 * releases any, so no later version replaces a hold's row. On Citus every shard is counted on
 * its worker, where the xid is the worker's local transaction (a batch writes one shard).
 */
export async function holdWrites(url: string, citus: boolean): Promise<ShardWrites[]> {
  const sql = connect(url);
  try {
    if (!citus) {
      const rows = await sql<ShardWrites[]>`
        SELECT 0 AS shard, count(*)::int AS holds, count(DISTINCT xmin::text)::int AS transactions
          FROM holds`;
      return rows.map((r) => ({ ...r }));
    }
    const rows = await sql<{ shard: string; success: boolean; result: string }[]>`
      SELECT shardid::text AS shard, success, result
        FROM run_command_on_shards('holds',
               $$SELECT count(*) || ' ' || count(DISTINCT xmin::text) FROM %s$$)`;
    return rows.map((r) => {
      if (!r.success) throw new Error(`counting holds of shard ${r.shard}: ${r.result}`);
      const [holds, transactions] = r.result.split(" ").map(Number);
      return { shard: Number(r.shard), holds: holds!, transactions: transactions! };
    });
  } finally {
    await sql.end();
  }
}

/** Batches of a measurement: holds per transaction, over the shards it wrote to. */
export interface BatchSizes {
  holds: number;
  transactions: number;
  /** Mean holds per transaction, over every shard written. */
  mean: number;
  /** The smallest and largest mean of one shard. */
  shardMin: number;
  shardMax: number;
  shardsWritten: number;
  shards: number;
}

/** What was written between two counts of holdWrites. */
export function batchSizes(before: ShardWrites[], after: ShardWrites[]): BatchSizes | undefined {
  const earlier = new Map(before.map((s) => [s.shard, s]));
  const written = after
    .map((s) => ({
      holds: s.holds - (earlier.get(s.shard)?.holds ?? 0),
      transactions: s.transactions - (earlier.get(s.shard)?.transactions ?? 0),
    }))
    .filter((s) => s.holds > 0 && s.transactions > 0);
  if (written.length === 0) return undefined;
  const holds = written.reduce((sum, s) => sum + s.holds, 0);
  const transactions = written.reduce((sum, s) => sum + s.transactions, 0);
  const means = written.map((s) => s.holds / s.transactions);
  return {
    holds,
    transactions,
    mean: holds / transactions,
    shardMin: Math.min(...means),
    shardMax: Math.max(...means),
    shardsWritten: written.length,
    shards: after.length,
  };
}
