import { randomBytes } from "node:crypto";
import postgres from "postgres";
import type { BenchConfig } from "../config.ts";
import { runCli } from "./holdfast.ts";
import { whenSlotFree } from "./retry.ts";

/** Bench databases older than this are left by a run that died; a new run drops them. */
const STALE_AFTER_SECONDS = 3 * 60 * 60;
const NAME = /^holdfast_bench_(?:[a-z]+_)?(\d+)_[0-9a-f]+$/;
/** Rows per INSERT when writing long histories: bounds the per-statement trigger queue. */
const CHUNK = 100_000;

export const connect = (url: string, max = 1) =>
  postgres(url, { max, onnotice: () => {}, connection: { application_name: "holdfast-bench" } });

export function databaseUrl(config: BenchConfig, name: string): string {
  return urlOn(config.adminUrl, name);
}

/** The URL of database `name` on the server of `server` (a URL of another database there). */
export function urlOn(server: string, name: string): string {
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `holdfast_bench_[<what>_]<unix>_<random>`: the timestamp lets a later run drop it after a crash. */
export function benchDatabaseName(config: BenchConfig, what?: string): string {
  const random = randomBytes(4).toString("hex");
  return ["holdfast_bench", what, config.unix, random].filter(Boolean).join("_");
}

/**
 * Creates (if it does not exist) and migrates a database through the CLI, as a deployment
 * would, on the server of `server` (BENCH_PG_URL's by default).
 */
export async function createMigrated(
  config: BenchConfig,
  name: string,
  server = config.adminUrl,
): Promise<string> {
  const url = urlOn(server, name);
  await whenSlotFree(`migrate ${name}`, async () => {
    const { code, output } = await runCli(config, "migrate", url);
    if (code !== 0) throw new Error(`holdfast migrate failed for ${name}:\n${output}`);
  });
  return url;
}

export async function dropDatabase(
  config: BenchConfig,
  name: string,
  server = config.adminUrl,
): Promise<void> {
  await whenSlotFree(`drop ${name}`, async () => {
    const sql = connect(server);
    try {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await sql.end();
    }
  });
}

/** Drops the bench databases a dead run left on the server of `server` (BENCH_PG_URL's by default). */
export function dropStaleDatabases(
  config: BenchConfig,
  server = config.adminUrl,
): Promise<string[]> {
  return whenSlotFree("drop stale databases", () => dropStale(config, server));
}

async function dropStale(config: BenchConfig, server: string): Promise<string[]> {
  const sql = connect(server);
  try {
    const rows = await sql<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE 'holdfast\_bench\_%'`;
    const cutoff = config.unix - STALE_AFTER_SECONDS;
    const stale = rows
      .map((r) => r.datname)
      .filter((name) => Number(NAME.exec(name)?.[1] ?? Number.POSITIVE_INFINITY) < cutoff);
    for (const name of stale) await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    return stale;
  } finally {
    await sql.end();
  }
}

export function serverInfo(url: string): Promise<{ version: string; synchronousCommit: string }> {
  return whenSlotFree("server info", () => readServerInfo(url));
}

async function readServerInfo(
  url: string,
): Promise<{ version: string; synchronousCommit: string }> {
  const sql = connect(url);
  try {
    const [row] = await sql<{ version: string; sc: string }[]>`
      SELECT current_setting('server_version') AS version,
             current_setting('synchronous_commit') AS sc`;
    return { version: row!.version, synchronousCommit: row!.sc };
  } finally {
    await sql.end();
  }
}

/**
 * Creates user accounts and gives each `credits` credit transactions of `amount` from
 * @issuance, with set-based SQL instead of one API call per credit. What it writes is what
 * creditAccount would have written, so `holdfast verify` passes: each transaction's two
 * entries come from one INSERT (the balance trigger checks per statement), the user's entries
 * are numbered 1..credits with running balances, and the account row and the @issuance row of
 * its bucket are moved by its total.
 *
 * With `deferForeignKeys` (only on a database the bench created, and only as a superuser), the
 * row-by-row foreign-key triggers of `entries` (four lookups per credit, most of the time of a
 * million-entry history) are switched off inside the transaction and the same references are
 * checked afterwards with one anti-join each. The append-only and balance triggers stay on.
 */
/** The Account an event's data shows for a seeded row, as SQL: what toAccount renders. */
const accountJson = (id: string, settled: string) =>
  `jsonb_build_object('id', ${id}, 'settled', ${settled}, 'held', 0, 'available', ${settled},
     'metadata', '{"bench":true}'::jsonb,
     'createdAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))`;

export function seedAccounts(url: string, input: SeedInput): Promise<void> {
  return whenSlotFree("seed accounts", () => seed(url, input));
}

export interface SeedInput {
  ids: string[];
  credits: number;
  amount: number;
  deferForeignKeys?: boolean;
}

async function seed(url: string, input: SeedInput): Promise<void> {
  const { ids, credits, amount } = input;
  const sql = connect(url);
  try {
    await sql.begin(async (tx) => {
      await tx`INSERT INTO accounts (bucket, id, kind, metadata)
               SELECT holdfast_bucket(id), id, 'user', '{"bench":true}'::jsonb
                 FROM unnest(${ids}::text[]) AS id`;
      await tx`INSERT INTO events (bucket, id, account_id, sequence, type, data)
               SELECT holdfast_bucket(id), gen_random_uuid(), id, 1, 'account.created',
                      ${tx.unsafe(accountJson("id", "0"))}
                 FROM unnest(${ids}::text[]) AS id`;
      const foreignKeys = input.deferForeignKeys ? await foreignKeyTriggers(tx) : [];
      const [before] = await tx<
        { id: number }[]
      >`SELECT COALESCE(max(id), 0)::int8 AS id FROM entries`;
      for (const name of foreignKeys) {
        await tx.unsafe(`ALTER TABLE entries DISABLE TRIGGER "${name}"`);
      }
      const perChunk = Math.max(1, Math.floor(CHUNK / ids.length));
      for (let from = 1; from <= credits; from += perChunk) {
        const to = Math.min(credits, from + perChunk - 1);
        await tx`
          WITH s AS MATERIALIZED (
            SELECT holdfast_bucket(a.id) AS bucket, a.id AS account_id, c AS seq,
                   gen_random_uuid() AS txn
              FROM unnest(${ids}::text[]) AS a(id), generate_series(${from}::int8, ${to}::int8) AS c
          ), t AS (
            INSERT INTO ledger_transactions (bucket, id, kind, reason)
            SELECT bucket, txn, 'credit', 'bench seed' FROM s
          ), v AS (
            INSERT INTO events (bucket, id, account_id, sequence, type, data)
            SELECT bucket, gen_random_uuid(), account_id, seq + 1, 'account.credited',
                   jsonb_build_object('transactionId', txn,
                                      'account', ${tx.unsafe(accountJson("account_id", `seq * ${amount}::int8`))})
              FROM s
          )
          INSERT INTO entries (bucket, transaction_id, leg, account_id, seq, amount, settled_after, kind)
          SELECT bucket, txn, 0, account_id, seq, ${amount}::int8, seq * ${amount}::int8, 'credit' FROM s
          UNION ALL
          SELECT bucket, txn, 1, '@issuance', NULL, -${amount}::int8, NULL, 'credit' FROM s`;
      }
      if (foreignKeys.length > 0) {
        for (const name of foreignKeys) {
          await tx.unsafe(`ALTER TABLE entries ENABLE TRIGGER "${name}"`);
        }
        const [orphans] = await tx<{ n: number }[]>`
          SELECT count(*)::int AS n FROM entries e
           WHERE e.id > ${before!.id}
             AND (NOT EXISTS (SELECT 1 FROM ledger_transactions t
                             WHERE t.bucket = e.bucket AND t.id = e.transaction_id)
                  OR NOT EXISTS (SELECT 1 FROM accounts a
                                  WHERE a.bucket = e.bucket AND a.id = e.account_id))`;
        if (orphans!.n > 0)
          throw new Error(`seeding wrote ${orphans!.n} entries with dangling references`);
      }
      await tx`UPDATE accounts SET settled = ${credits * amount}::int8, last_seq = ${credits}::int8
                WHERE id = ANY(${ids}::text[])`;
      await tx`UPDATE accounts a SET settled = a.settled - n.accounts * ${credits * amount}::int8
                 FROM (SELECT holdfast_bucket(id) AS bucket, count(*) AS accounts
                         FROM unnest(${ids}::text[]) AS id GROUP BY 1) n
                WHERE a.bucket = n.bucket AND a.id = '@issuance'`;
    });
  } finally {
    await sql.end();
  }
}

/** The foreign-key check triggers on `entries`, when this session may switch them off. */
async function foreignKeyTriggers(tx: postgres.TransactionSql): Promise<string[]> {
  const [role] = await tx<{ superuser: boolean }[]>`
    SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user`;
  if (!role?.superuser) return [];
  const rows = await tx<{ name: string }[]>`
    SELECT t.tgname AS name FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint
     WHERE t.tgrelid = 'entries'::regclass AND c.contype = 'f' AND c.conrelid = 'entries'::regclass`;
  return rows.map((r) => r.name);
}
