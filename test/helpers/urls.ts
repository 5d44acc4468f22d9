const base = new URL(
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
);

export const ADMIN_URL = base.toString();
export const TEMPLATE_DB = "holdfast_test_template";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function databaseUrl(name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}
