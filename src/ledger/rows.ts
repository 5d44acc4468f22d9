import { sql } from "drizzle-orm";

const PG_UTC = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,3}))?\+00$/;

/**
 * Raw statements return timestamps as Postgres text (the session runs in UTC), e.g.
 * "2026-11-23 18:20:00.123+00"; the API speaks ISO 8601.
 */
export function toIso(value: string | Date): string {
  if (value instanceof Date) return value.toISOString();
  // The usual shape, rewritten without a Date: "2026-11-23 18:20:00.12+00" → "….120Z".
  const utc = PG_UTC.exec(value);
  if (utc) return `${utc[1]}T${utc[2]}.${(utc[3] ?? "").padEnd(3, "0")}Z`;
  return new Date(value.replace(" ", "T").replace(/\+00(:00)?$/, "Z")).toISOString();
}

export const toIsoOrNull = (value: string | Date | null): string | null =>
  value === null ? null : toIso(value);

/** jsonb parameters go in as text and are cast in SQL: drizzle passes objects through as-is. */
export const jsonParam = (value: unknown): string | null =>
  value === undefined || value === null ? null : JSON.stringify(value);

/**
 * Strings as an array argument for `= ANY (…)`: a prepared statement keeps index look-ups for
 * it in its generic plan, where a join with the set could be planned as a scan of the table.
 */
export const textArray = (values: string[]) =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;

export const uuidArray = (ids: string[]) =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::uuid)`;

export const intArray = (values: number[]) =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb)::int)`;

/**
 * Buckets as one int[] parameter, for `bucket = ANY (…)` in a statement Citus must route to the
 * shards of those buckets: it prunes shards from a parameter, not from intArray's subquery, so
 * with that a FOR UPDATE (one shard only) and a multi-shard DELETE fail. Integers only, so the
 * array's text form is safe to build.
 */
export const bucketArray = (buckets: number[]) =>
  sql`${`{${buckets.map((b) => Math.trunc(b)).join(",")}}`}::int[]`;
