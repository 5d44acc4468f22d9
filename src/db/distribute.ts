import { sql } from "drizzle-orm";
import type postgres from "postgres";
import type { Db } from "./client.ts";

/** Every table written on behalf of an account or per shard, distributed by bucket, colocated. */
const DISTRIBUTED = [
  "accounts",
  "ledger_transactions",
  "holds",
  "entries",
  "redemptions",
  "promotion_allotments",
  "idempotency_keys",
  "refunds",
  "events",
  "event_feeds",
  "webhook_deliveries",
  "webhook_attempts",
  "webhook_cursors",
] as const;

/** Read-mostly and small: a copy on every node. */
const REFERENCE = ["promotions", "webhook_endpoints"] as const;

/**
 * On a database with the `citus` extension, distributes holdfast's tables (once; later runs see
 * them distributed and do nothing); on plain Postgres does nothing. Citus refuses foreign keys
 * between a distributed table and a local one, so the foreign keys are dropped, the tables
 * distributed and the same keys added again. The shard count is the database's
 * citus.shard_count, as Citus takes it. The triggers are row and statement triggers that read
 * only their own rows (see src/db/sql/check_balanced.sql), which is what
 * citus.enable_unsafe_triggers asks to be sure of.
 */
export async function distributeTables(sql: postgres.Sql): Promise<boolean> {
  const [citus] = await sql`SELECT 1 FROM pg_extension WHERE extname = 'citus'`;
  if (!citus) return false;
  await sql.begin(async (tx) => {
    // Done: distributed by hash, or a reference table. A table a migration creates with a
    // foreign key to a reference table is in pg_dist_partition too, as a Citus local table: not
    // done. Tables a later migration adds are left out until it has run.
    const done = await tx<{ name: string }[]>`
      SELECT logicalrelid::regclass::text AS name FROM pg_dist_partition
       WHERE partmethod = 'h' OR repmodel = 't'`;
    const present = await tx<{ name: string }[]>`
      SELECT relname AS name FROM pg_class
       WHERE relnamespace = 'public'::regnamespace AND relname IN ${tx([...DISTRIBUTED, ...REFERENCE])}`;
    const todo = [...DISTRIBUTED, ...REFERENCE].filter(
      (t) => present.some((p) => p.name === t) && !done.some((d) => d.name === t),
    );
    if (todo.length === 0) return;
    await tx`SET LOCAL citus.enable_unsafe_triggers = on`;
    await tx`SET LOCAL citus.multi_shard_modify_mode = 'sequential'`;
    const keys = await tx<{ table: string; name: string; definition: string }[]>`
      SELECT conrelid::regclass::text AS table, conname AS name,
             pg_get_constraintdef(oid) AS definition
        FROM pg_constraint
       WHERE contype = 'f' AND connamespace = 'public'::regnamespace
         AND conrelid::regclass::text IN ${tx([...DISTRIBUTED, ...REFERENCE])}`;
    for (const k of keys) await tx.unsafe(`ALTER TABLE "${k.table}" DROP CONSTRAINT "${k.name}"`);
    for (const table of REFERENCE) {
      if (todo.includes(table)) await tx`SELECT create_reference_table(${table})`;
    }
    for (const table of DISTRIBUTED) {
      if (!todo.includes(table)) continue;
      await tx`SELECT create_distributed_table(${table}, 'bucket',
                 colocate_with => ${table === "accounts" ? "default" : "accounts"})`;
    }
    for (const k of keys) {
      await tx.unsafe(`ALTER TABLE "${k.table}" ADD CONSTRAINT "${k.name}" ${k.definition}`);
    }
  });
  return true;
}

/**
 * On Citus, a transaction that reads or writes many shards in parallel may not write a
 * reference table after (webhook_endpoints, beside the events it reads); in sequential mode it
 * may. On plain Postgres the setting is a placeholder that nothing reads.
 */
export async function oneShardAtATime(tx: Db): Promise<void> {
  await tx.execute(sql`SET LOCAL citus.multi_shard_modify_mode TO 'sequential'`);
}
