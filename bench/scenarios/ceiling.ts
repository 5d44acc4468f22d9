import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startChild } from "../lib/children.ts";
import { type BenchContext, log } from "../lib/context.ts";
import { type CpuUse, withCpu } from "../lib/cpu.ts";
import {
  benchDatabaseName,
  connect,
  createMigrated,
  databaseUrl,
  dropDatabase,
  seedAccounts,
} from "../lib/database.ts";
import type { Spread } from "./hold-placements.ts";

export interface CeilingResult {
  tps: number;
  transactions: number;
  failed: number;
  latencyAverageMs: number | undefined;
  /** From pgbench's per-transaction log (-l). */
  latencyMs: { p50: number; p99: number } | undefined;
  clients: number;
  threads: number;
  /** Per transaction, over the pgbench run. */
  cpu: CpuUse | undefined;
}

function findPgbench(): string {
  try {
    return execFileSync("which", ["pgbench"], { encoding: "utf8" }).trim();
  } catch {
    const base = "/usr/lib/postgresql";
    const versions = existsSync(base) ? readdirSync(base).sort().reverse() : [];
    for (const version of versions) {
      const candidate = join(base, version, "bin", "pgbench");
      if (existsSync(candidate)) return candidate;
    }
    throw new Error(
      "pgbench not found: apt-get install -y postgresql-contrib (or postgresql-client)",
    );
  }
}

/**
 * One durable transaction per hold: exactly the row work a hold needs and nothing more. pgbench
 * variables are numbers, so the account id is built in SQL from the number.
 */
function script(config: BenchContext["config"], ids: BenchContext["ids"], spread: Spread): string {
  const pick = spread === "hot" ? "" : `\\set acct random(1, ${config.spreadAccounts})\n`;
  const account = spread === "hot" ? `'${ids.hot}'` : `'${ids.spreadPrefix}' || :acct::text`;
  return `${pick}BEGIN;
UPDATE accounts SET held = held + 1 WHERE id = ${account} AND settled - held >= 1;
INSERT INTO holds (bucket, id, account_id, amount, expires_at) VALUES (holdfast_bucket(${account}), gen_random_uuid(), ${account}, 1, now() + interval '1 hour');
COMMIT;
`;
}

/** Percentiles of the transaction times (third column, µs) in pgbench's per-thread logs. */
async function logLatencies(dir: string): Promise<CeilingResult["latencyMs"]> {
  const times: number[] = [];
  for (const file of await readdir(dir)) {
    if (!file.startsWith("txlog")) continue;
    for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
      const micros = Number(line.split(" ")[2]);
      if (Number.isFinite(micros) && line !== "") times.push(micros / 1000);
    }
  }
  if (times.length === 0) return undefined;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

function parse(output: string): Omit<CeilingResult, "clients" | "threads" | "latencyMs" | "cpu"> {
  const tps = /^tps = ([\d.]+)/m.exec(output);
  if (!tps) throw new Error(`no tps in pgbench output:\n${output}`);
  return {
    tps: Number(tps[1]),
    transactions: Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? 0),
    failed: Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0),
    latencyAverageMs: Number(/latency average = ([\d.]+) ms/.exec(output)?.[1]) || undefined,
  };
}

/**
 * Scenario 2: the ceiling of one durable transaction per hold on this Postgres server, measured
 * with pgbench on a scratch database that has the holdfast schema (migrated with the CLI) and
 * the same funded accounts. Each run gets a fresh database, so the hot run does not pay for
 * the spread run's dead tuples.
 */
export async function ceiling(ctx: BenchContext, spread: Spread): Promise<CeilingResult> {
  const { config, ids } = ctx;
  const pgbench = findPgbench();
  const name = benchDatabaseName(config, "pgbench");
  const dir = await mkdtemp(join(tmpdir(), "holdfast-bench-"));
  try {
    log(`ceiling (${spread}): scratch database ${name}`);
    const url = await createMigrated(config, name);
    const spreadIds = Array.from({ length: config.spreadAccounts }, (_, i) => ids.spread(i + 1));
    await seedAccounts(url, { ids: [...spreadIds, ids.hot], credits: 1, amount: 1e12 });
    const sql = connect(url);
    await sql`VACUUM (ANALYZE)`.finally(() => sql.end());
    const file = join(dir, `${spread}.sql`);
    await writeFile(file, script(config, ids, spread));
    const args = [
      "-n",
      "-M",
      "prepared",
      "-c",
      String(config.pgbenchClients),
      "-j",
      String(config.pgbenchThreads),
      "-T",
      String(config.durationS),
      "-f",
      file,
      "-l",
      `--log-prefix=${join(dir, "txlog")}`,
      databaseUrl(config, name),
    ];
    log(
      `ceiling (${spread}): pgbench -c ${config.pgbenchClients} -j ${config.pgbenchThreads} -T ${config.durationS}`,
    );
    const { result, cpu } = await withCpu(
      async (track) => {
        const child = startChild("pgbench", pgbench, args);
        track("bench", child.process.pid);
        const code = await child.exited;
        if (code !== 0) throw new Error(`pgbench exited with ${code}:\n${child.output()}`);
        return parse(child.output());
      },
      (parsed) => parsed.transactions,
    );
    return {
      ...result,
      cpu,
      latencyMs: await logLatencies(dir),
      clients: config.pgbenchClients,
      threads: config.pgbenchThreads,
    };
  } finally {
    await dropDatabase(config, name).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
