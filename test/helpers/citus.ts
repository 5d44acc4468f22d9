import postgres from "postgres";

/** The local cluster of ../shared/citus/cluster.sh: a coordinator and two workers. */
export const CITUS_COORDINATOR_PORT = Number(process.env.CITUS_COORDINATOR_PORT ?? 5499);
export const CITUS_WORKER_PORTS = (process.env.CITUS_WORKER_PORTS ?? "5501 5502")
  .split(/\s+/)
  .filter(Boolean)
  .map(Number);

const url = (port: number, database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;

const onNode = async <T>(port: number, database: string, fn: (sql: postgres.Sql) => Promise<T>) => {
  const sql = postgres(url(port, database), { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
};

/** Fails with what to run when the cluster is not up. */
export async function requireCitus(): Promise<void> {
  try {
    await onNode(CITUS_COORDINATOR_PORT, "postgres", (sql) => sql`SELECT 1`);
  } catch (error) {
    throw new Error(
      `test:scale needs the local Citus cluster on port ${CITUS_COORDINATOR_PORT} ` +
        `(bash ../shared/citus/cluster.sh up): ${(error as Error).message}`,
    );
  }
}

/**
 * A database on the coordinator and every worker, with the citus extension and the workers
 * registered, as cluster.sh createdb makes it; the URL of the coordinator's.
 */
export async function createCitusDatabase(name: string): Promise<string> {
  for (const port of [CITUS_COORDINATOR_PORT, ...CITUS_WORKER_PORTS]) {
    await onNode(port, "postgres", (sql) => sql.unsafe(`CREATE DATABASE "${name}"`));
    await onNode(port, name, (sql) => sql`CREATE EXTENSION IF NOT EXISTS citus`);
  }
  await onNode(CITUS_COORDINATOR_PORT, name, async (sql) => {
    await sql`SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_COORDINATOR_PORT})`;
    for (const port of CITUS_WORKER_PORTS) await sql`SELECT citus_add_node('127.0.0.1', ${port})`;
  });
  return url(CITUS_COORDINATOR_PORT, name);
}

export async function dropCitusDatabase(name: string): Promise<void> {
  for (const port of [CITUS_COORDINATOR_PORT, ...CITUS_WORKER_PORTS]) {
    await onNode(port, "postgres", (sql) =>
      sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
    );
  }
}

/** Two-phase commits recorded so far, and single- and multi-shard queries, of one database. */
export async function distributedCounters(sql: postgres.Sql) {
  const [row] = await sql<{ two_phase: number; single: number; multi: number }[]>`
    SELECT (SELECT count(*) FROM pg_dist_transaction)::int AS two_phase,
           query_execution_single_shard::int AS single,
           query_execution_multi_shard::int AS multi
      FROM citus_stat_counters WHERE name = current_database()`;
  return row!;
}
