/**
 * Raw statements return timestamps as Postgres text (the session runs in UTC), e.g.
 * "2026-11-23 18:20:00.123+00"; the API speaks ISO 8601.
 */
export function toIso(value: string | Date): string {
  if (value instanceof Date) return value.toISOString();
  return new Date(value.replace(" ", "T").replace(/\+00(:00)?$/, "Z")).toISOString();
}

export const toIsoOrNull = (value: string | Date | null): string | null =>
  value === null ? null : toIso(value);

/** jsonb parameters go in as text and are cast in SQL: drizzle passes objects through as-is. */
export const jsonParam = (value: unknown): string | null =>
  value === undefined || value === null ? null : JSON.stringify(value);
