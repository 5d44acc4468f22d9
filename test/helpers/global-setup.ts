import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { ensureDatabase, runMigrations } from "../../src/db/migrate.ts";
import { ADMIN_URL, databaseUrl, STALE_AFTER_SECONDS, testDatabaseName } from "./urls.ts";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

async function dropDatabases(names: string[]) {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    for (const name of names) await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Test databases left by runs that died; several runs may share the server, so only old ones. */
async function staleDatabases(): Promise<string[]> {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    const rows = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname ~ '^holdfast_t(tpl)?_[0-9]+_'`;
    const cutoff = Date.now() / 1000 - STALE_AFTER_SECONDS;
    return rows.map((r) => r.datname).filter((name) => Number(name.split("_")[2]) < cutoff);
  } finally {
    await admin.end();
  }
}

/**
 * Migrates one template database per run; each test file clones it (CREATE DATABASE …
 * TEMPLATE), which takes milliseconds and keeps files isolated from each other.
 */
export async function setup(project: TestProject) {
  await dropDatabases(await staleDatabases());
  const template = testDatabaseName("holdfast_ttpl");
  await ensureDatabase(databaseUrl(template));
  await runMigrations(databaseUrl(template));
  project.provide("templateDatabase", template);
  return async () => dropDatabases([template]);
}
