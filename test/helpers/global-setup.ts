import postgres from "postgres";
import { ensureDatabase, runMigrations } from "../../src/db/migrate.ts";
import { ADMIN_URL, databaseUrl, TEMPLATE_DB } from "./urls.ts";

/**
 * Migrates one template database; each test file then clones it (CREATE DATABASE … TEMPLATE),
 * which takes milliseconds and keeps files isolated from each other.
 */
export async function setup() {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    const stale = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE 'holdfast_t_%'`;
    for (const { datname } of stale) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await admin.unsafe(`DROP DATABASE IF EXISTS "${TEMPLATE_DB}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  await ensureDatabase(databaseUrl(TEMPLATE_DB));
  await runMigrations(databaseUrl(TEMPLATE_DB));
}
