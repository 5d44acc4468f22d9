import postgres from "postgres";
import { inject } from "vitest";
import { createDb, type DbHandle } from "../../src/db/client.ts";
import { runMigrations } from "../../src/db/migrate.ts";
import { createCitusDatabase, dropCitusDatabase } from "./citus.ts";
import { ADMIN_URL, databaseUrl, testDatabaseName } from "./urls.ts";

export interface TestDatabase extends DbHandle {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * A private database cloned from the migrated template; drop() removes it. In the scale project
 * (HOLDFAST_TEST_CITUS=1), a database on the local Citus cluster instead, migrated, so its
 * tables are distributed.
 */
export async function createTestDatabase(options: { max?: number } = {}): Promise<TestDatabase> {
  if (process.env.HOLDFAST_TEST_CITUS === "1") return createCitusTestDatabase(options);
  const name = testDatabaseName("holdfast_t");
  const template = inject("templateDatabase");
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        break;
      } catch (error) {
        // 55006: the template is briefly in use by a concurrent clone.
        if ((error as { code?: string }).code !== "55006" || attempt > 50) throw error;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } finally {
    await admin.end();
  }
  return opened(databaseUrl(name), name, options, async () => {
    const a = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await a.end();
    }
  });
}

/** A pool on the new database `name`; drop() closes it, then `remove` drops the database. */
function opened(
  url: string,
  name: string,
  options: { max?: number },
  remove: () => Promise<void>,
): TestDatabase {
  const handle = createDb(url, { max: options.max ?? 20, application: "holdfast-test" });
  return {
    ...handle,
    url,
    name,
    drop: async () => {
      await handle.close();
      await remove();
    },
  };
}

/** Resolves once `atLeast` backends of the database `sql` is on wait on a row lock. */
export async function someoneWaitsOnALock(sql: postgres.Sql, atLeast = 1): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    if (row!.n >= atLeast) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`fewer than ${atLeast} sessions waited on a lock`);
}

/** `migrationsFolder`: an older set of migrations, for a test of an upgrade. */
export async function createCitusTestDatabase(
  options: { max?: number; migrationsFolder?: string } = {},
): Promise<TestDatabase> {
  const name = testDatabaseName("holdfast_c");
  const url = await createCitusDatabase(name);
  await runMigrations(url, options.migrationsFolder);
  return opened(url, name, options, () => dropCitusDatabase(name));
}
