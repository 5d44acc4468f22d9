import { randomBytes } from "node:crypto";

const base = new URL(
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
);

export const ADMIN_URL = base.toString();
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
/** Databases of test runs older than this are assumed abandoned and dropped. */
export const STALE_AFTER_SECONDS = 3 * 60 * 60;

/** `<prefix>_<unix seconds>_<random>`: the timestamp lets a later run clean up after a crash. */
export function testDatabaseName(prefix: string): string {
  return `${prefix}_${Math.floor(Date.now() / 1000)}_${randomBytes(5).toString("hex")}`;
}

export function databaseUrl(name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}
