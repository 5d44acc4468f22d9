import { fileURLToPath } from "node:url";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { createDb } from "./client.ts";
import { distributeTables } from "./distribute.ts";

const MIGRATIONS = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** Creates the database named in `url` if it is missing, connecting to `postgres` to do so. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!name) throw new Error(`DATABASE_URL ${url} names no database`);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const sql = postgres(admin.toString(), { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const rows = await sql`SELECT 1 FROM pg_database WHERE datname = ${name}`;
    if (rows.length > 0) return false;
    try {
      await sql.unsafe(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    } catch (error) {
      // Another process created it between our look and our CREATE.
      if ((error as { code?: string }).code !== "42P04") throw error;
    }
    return true;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Applies the migrations (of `migrationsFolder`: a test's older set), then distributes on Citus. */
export async function runMigrations(url: string, migrationsFolder = MIGRATIONS): Promise<void> {
  const handle = createDb(url, { max: 1, application: "holdfast-migrate" });
  try {
    // Serialise concurrent migrators (several instances starting at once).
    await handle.sql`SELECT pg_advisory_lock(727274)`;
    await migrate(handle.db, { migrationsFolder });
    await distributeTables(handle.sql);
  } finally {
    await handle.close();
  }
}
