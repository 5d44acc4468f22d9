import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { guardTransactions } from "./guard-transactions.ts";
import { prepareByDefault } from "./prepare-by-default.ts";
import * as schema from "./schema/index.ts";
import { requireWholeResults } from "./whole-results.ts";

export type Database = PostgresJsDatabase<typeof schema>;
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];
/** What every domain function takes first: the pool, or a transaction to compose in. */
export type Db = Database | Tx;

export interface DbHandle {
  db: Database;
  sql: postgres.Sql;
  close(): Promise<void>;
}

/** int8 values within 2^53 − 1 become numbers; larger ones (system totals) stay exact as bigint. */
function parseInt8(value: string): number | bigint {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : BigInt(value);
}

export function createDb(
  url: string,
  options: { max?: number; application?: string; statementTimeoutMs?: number } = {},
): DbHandle {
  const sql = postgres(url, {
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 5,
    max_lifetime: 60 * 30,
    // postgres.js reads the array types on every new connection from a promise nobody awaits:
    // a connection lost during that read (a Postgres restart) is an unhandled rejection, which
    // ends the process. holdfast passes no arrays (sets go as jsonb), so it needs no types.
    fetch_types: false,
    // postgres.js's default backoff between reconnects grows to 20 s over a few failures, and
    // it counts failures across the pool: after an outage of a few seconds, requests waited on
    // a connection asleep for up to 20 s, though Postgres was back. At most 1 s (with jitter)
    // keeps an outage's requests failing fast (503) and ends the wait soon after it.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2),
    onnotice: () => {},
    connection: {
      application_name: options.application ?? "holdfast",
      TimeZone: "UTC",
      // Bounded waits: a stuck lock or query surfaces as an error instead of a hung request.
      lock_timeout: 5000,
      statement_timeout: options.statementTimeoutMs ?? 15000,
      idle_in_transaction_session_timeout: 30000,
    },
  });
  sql.options.parsers[20] = parseInt8;
  // Every scope: the pool's sql, and each transaction's and savepoint's, made afresh by postgres.js.
  const instrument = (scope: unknown) => {
    prepareByDefault(scope);
    requireWholeResults(scope);
  };
  instrument(sql);
  guardTransactions(sql, instrument);
  const db = drizzle(sql, { schema });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}
