import { type BenchConfig, CITUS_SCENARIOS } from "../config.ts";
import type { CeilingResult } from "../scenarios/ceiling.ts";
import type { BackendPlacements } from "../scenarios/citus-placements.ts";
import type { SettlementResult } from "../scenarios/settlements.ts";
import { CPU_GROUPS, type CpuUse } from "./cpu.ts";
import type { LoadResult } from "./load.ts";
import type { MachineInfo } from "./machine.ts";
import { round } from "./results.ts";
import { type Column, fixed, formatTable, ratio } from "./table.ts";
import type { VerifyOutcome } from "./verify.ts";

export type Outcome<T> =
  | { status: "ok"; result: T }
  | { status: "skipped" | "failed"; reason: string };

export interface Runs {
  holdsSpread: Outcome<LoadResult>;
  holdsHot: Outcome<LoadResult>;
  holdsSpreadUnbatched: Outcome<LoadResult>;
  holdsEventsOn: Outcome<LoadResult>;
  holdsEventsOff: Outcome<LoadResult>;
  ceilingSpread: Outcome<CeilingResult>;
  ceilingHot: Outcome<CeilingResult>;
  httpLimit: Outcome<LoadResult>;
  settlements: Outcome<SettlementResult>;
  readsSmall: Outcome<LoadResult>;
  readsLarge: Outcome<LoadResult>;
  holdsSpreadPlain: Outcome<BackendPlacements>;
  holdsSpreadCitus32: Outcome<BackendPlacements>;
  holdsSpreadCitus4: Outcome<BackendPlacements>;
  holdsHotPlain: Outcome<BackendPlacements>;
  holdsHotCitus32: Outcome<BackendPlacements>;
  holdsHotCitus4: Outcome<BackendPlacements>;
}

type CitusKey = (typeof CITUS_SCENARIOS)[number];
/** The scenarios of the main tables; the Citus group has tables of its own. */
type MainKey = Exclude<keyof Runs, CitusKey>;

export interface Report {
  machine: MachineInfo;
  config: BenchConfig;
  runs: Runs;
  verify: VerifyOutcome | undefined;
  notes: string[];
}

const value = <T>(outcome: Outcome<T>): T | undefined =>
  outcome.status === "ok" ? outcome.result : undefined;

function loadErrors(load: LoadResult): string {
  const total = load.non2xx + load.errors;
  if (total === 0) return "0";
  const codes = Object.entries(load.statusCodes)
    .filter(([code]) => !code.startsWith("2"))
    .map(([code, count]) => `${code}×${count}`);
  if (load.errors > 0) codes.push(`socket×${load.errors}`);
  return `${total} (${codes.join(", ")})`;
}

/** The columns of a load run, first in both tables. */
const LOAD_COLUMNS: Column[] = [
  { title: "scenario", align: "left" },
  { title: "per s", align: "right" },
  { title: "p50 ms", align: "right" },
  { title: "p99 ms", align: "right" },
  { title: "errors", align: "right" },
];

const COLUMNS: Column[] = [
  ...LOAD_COLUMNS,
  { title: "vs ceiling", align: "right" },
  { title: "vs HTTP limit", align: "right" },
];

const CPU_COLUMNS: Column[] = [
  { title: "scenario", align: "left" },
  ...CPU_GROUPS.map((group): Column => ({ title: group, align: "right" })),
  { title: "all", align: "right" },
  { title: "busy", align: "right" },
  { title: "cores allow /s", align: "right" },
];

const cpuTotal = (cpu: CpuUse) => CPU_GROUPS.reduce((sum, g) => sum + cpu.usPerOp[g], 0);

/** One row of µs per operation; "cores allow" is the rate at which every core would be busy. */
function cpuRow(label: string, cpu: CpuUse): string[] {
  const all = cpuTotal(cpu);
  return [
    label,
    ...CPU_GROUPS.map((group) => fixed(cpu.usPerOp[group])),
    fixed(all),
    `${Math.round(cpu.busy * 100)}%`,
    fixed((cpu.cores * 1e6) / all),
  ];
}

function loadRow(
  label: string,
  outcome: Outcome<LoadResult>,
  ceiling: number | undefined,
  httpLimit: number | undefined,
): string[] {
  const load = value(outcome);
  if (!load)
    return [label, outcome.status === "ok" ? "-" : outcome.status, "-", "-", "-", "-", "-"];
  return [
    label,
    fixed(load.okPerSecond),
    load.ok > 0 ? fixed(load.latencyMs.p50, 1) : "-",
    load.ok > 0 ? fixed(load.latencyMs.p99, 1) : "-",
    loadErrors(load),
    ratio(load.okPerSecond, ceiling),
    ratio(load.okPerSecond, httpLimit),
  ];
}

export function formatReport(report: Report): string {
  const { runs, config, machine } = report;
  const ceilingSpread = value(runs.ceilingSpread)?.tps;
  const ceilingHot = value(runs.ceilingHot)?.tps;
  const httpLimit = value(runs.httpLimit)?.okPerSecond;
  const settle = value(runs.settlements);
  const accounts = config.spreadAccounts.toLocaleString("en-US");
  const pg = `pgbench -c ${config.pgbenchClients} -j ${config.pgbenchThreads}`;
  const ceilingRow = (label: string, outcome: Outcome<CeilingResult>) => {
    const c = value(outcome);
    return c
      ? [
          label,
          fixed(c.tps),
          fixed(c.latencyMs?.p50, 1),
          fixed(c.latencyMs?.p99, 1),
          String(c.failed),
          "1.00×",
          ratio(c.tps, httpLimit),
        ]
      : [label, outcome.status, "-", "-", "-", "-", "-"];
  };
  const label: Record<MainKey, string> = {
    holdsSpread: `holds, spread over ${accounts} accounts`,
    holdsHot: "holds, one hot account",
    holdsSpreadUnbatched: "holds, spread, batching off",
    holdsEventsOn: "holds, spread, fresh db, events on",
    holdsEventsOff: "holds, spread, fresh db, events off",
    ceilingSpread: `ceiling, spread (${pg})`,
    ceilingHot: `ceiling, hot (${pg})`,
    httpLimit: "HTTP limit (bare node:http, 201)",
    settlements: "settles via worker",
    readsSmall: `balance read, ${fixed(config.historyEntries.small)} entries`,
    readsLarge: `balance read, ${fixed(config.historyEntries.large)} entries`,
  };
  const rows = [
    loadRow(label.holdsSpread, runs.holdsSpread, ceilingSpread, httpLimit),
    loadRow(label.holdsHot, runs.holdsHot, ceilingHot, httpLimit),
    loadRow(label.holdsSpreadUnbatched, runs.holdsSpreadUnbatched, ceilingSpread, httpLimit),
    loadRow(label.holdsEventsOn, runs.holdsEventsOn, ceilingSpread, httpLimit),
    loadRow(label.holdsEventsOff, runs.holdsEventsOff, ceilingSpread, httpLimit),
    ceilingRow(label.ceilingSpread, runs.ceilingSpread),
    ceilingRow(label.ceilingHot, runs.ceilingHot),
    loadRow(label.httpLimit, runs.httpLimit, undefined, httpLimit),
    settle
      ? [
          `${label.settlements} (${fixed(settle.placed.ok)} holds)`,
          fixed(settle.settlesPerSecond),
          "-",
          "-",
          String(settle.unsettled + (config.settleHolds - settle.placed.ok)),
          "-",
          "-",
        ]
      : [label.settlements, runs.settlements.status, "-", "-", "-", "-", "-"],
    loadRow(label.readsSmall, runs.readsSmall, undefined, undefined),
    loadRow(label.readsLarge, runs.readsLarge, undefined, undefined),
  ];
  const cpuRows = (Object.keys(label) as MainKey[]).flatMap((key) => {
    const outcome: Outcome<{ cpu?: CpuUse | undefined }> = runs[key];
    const cpu = value(outcome)?.cpu;
    return cpu ? [cpuRow(label[key], cpu)] : [];
  });

  const lines = [
    `holdfast bench — ${machine.date}`,
    `${machine.cpuCount} × ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, ${machine.os}, Node ${machine.node}, PostgreSQL ${machine.postgres} (synchronous_commit=${machine.synchronousCommit})`,
    `${config.connections} connections, ${config.durationS} s per run (${config.readDurationS} s for reads), ${config.warmupS} s warm-up; ${config.url ? `target ${config.url}` : "holdfast started by the bench, fresh per run"}`,
    "",
    formatTable(COLUMNS, rows),
    "",
  ];
  if (cpuRows.length > 0) {
    lines.push(
      "CPU per operation, µs, from /proc during each measurement (server: the process under test; bench: autocannon, pgbench, the fulfilment stub)",
      formatTable(CPU_COLUMNS, cpuRows),
      "",
    );
  }
  lines.push(...citusSection(report));
  const batched = value(runs.holdsSpread);
  const unbatched = value(runs.holdsSpreadUnbatched);
  if (batched && unbatched) {
    lines.push(
      `batching: spread holds ${ratio(batched.okPerSecond, unbatched.okPerSecond)} with the micro-batcher on (HOLDFAST_BATCH_WINDOW_MS 1) vs off (0)`,
    );
  }
  const eventsOn = value(runs.holdsEventsOn);
  const eventsOff = value(runs.holdsEventsOff);
  if (eventsOn && eventsOff) {
    lines.push(
      `events: spread holds ${ratio(eventsOn.okPerSecond, eventsOff.okPerSecond)} with the outbox writing each hold's event vs HOLDFAST_EVENTS=off`,
    );
  }
  const small = value(runs.readsSmall);
  const large = value(runs.readsLarge);
  if (small && large) {
    lines.push(
      `balance read ${fixed(config.historyEntries.large)} vs ${fixed(config.historyEntries.small)} entries: p50 ${ratio(large.latencyMs.p50, small.latencyMs.p50)}, p99 ${ratio(large.latencyMs.p99, small.latencyMs.p99)}, throughput ${ratio(large.okPerSecond, small.okPerSecond)}`,
    );
  }
  if (settle) {
    lines.push(
      `settles: ${settle.settled} settled in ${settle.spanS.toFixed(2)} s (first ${settle.firstAfterS.toFixed(2)} s after the worker was ready); placement ${fixed(settle.placed.okPerSecond)} holds/s`,
    );
  }
  // One line per reason: the scenarios a reason (Citus not up, BENCH_ONLY) skipped, together.
  const reasons = new Map<string, string[]>();
  for (const [name, outcome] of Object.entries(runs) as [string, Outcome<unknown>][]) {
    if (outcome.status === "ok") continue;
    const why = `${outcome.status}: ${outcome.reason}`;
    reasons.set(why, [...(reasons.get(why) ?? []), name]);
  }
  for (const [why, names] of reasons) lines.push(`${names.join(", ")}: ${why}`);
  for (const note of report.notes) lines.push(`note: ${note}`);
  const verify = report.verify;
  lines.push(verify ? verify.line : "verify: not run (no database access)");
  return lines.join("\n");
}

const CITUS_LABELS: Record<CitusKey, string> = {
  holdsSpreadPlain: "holds, spread, plain Postgres",
  holdsSpreadCitus32: "holds, spread, Citus 32 shards",
  holdsSpreadCitus4: "holds, spread, Citus 4 shards",
  holdsHotPlain: "holds, hot, plain Postgres",
  holdsHotCitus32: "holds, hot, Citus 32 shards",
  holdsHotCitus4: "holds, hot, Citus 4 shards",
};

/** The plain run each Citus run is compared with: same load, fresh database on BENCH_PG_URL. */
const PLAIN_OF: Record<CitusKey, CitusKey> = {
  holdsSpreadPlain: "holdsSpreadPlain",
  holdsSpreadCitus32: "holdsSpreadPlain",
  holdsSpreadCitus4: "holdsSpreadPlain",
  holdsHotPlain: "holdsHotPlain",
  holdsHotCitus32: "holdsHotPlain",
  holdsHotCitus4: "holdsHotPlain",
};

const CITUS_COLUMNS: Column[] = [
  ...LOAD_COLUMNS,
  { title: "vs plain", align: "right" },
  { title: "holds/txn", align: "right" },
  { title: "by shard", align: "right" },
  { title: "shards written", align: "right" },
];

const port = (url: string) => new URL(url).port || "5432";

/** CPU seconds and µs per hold of one group of processes: "1.23 (456)". */
const spent = (seconds: number | undefined, ops: number) =>
  seconds === undefined ? "-" : `${seconds.toFixed(2)} (${fixed((seconds * 1e6) / ops)})`;

/**
 * Hold placements on plain Postgres and Citus, each on a fresh database: throughput against
 * the plain run of the same load and holds per transaction (batch size) by shard; then the
 * CPU each server used during the measurement.
 */
function citusSection(report: Report): string[] {
  const { runs, config } = report;
  const keys = CITUS_SCENARIOS.filter((key) => runs[key].status !== "skipped" || !config.only);
  const results = keys.map((key) => ({ key, result: value(runs[key]) }));
  if (!results.some((r) => r.result)) return [];
  const rows = results.map(({ key, result }) => {
    if (!result) return [CITUS_LABELS[key], runs[key].status, "-", "-", "-", "-", "-", "-", "-"];
    const b = result.batches;
    return [
      CITUS_LABELS[key],
      fixed(result.okPerSecond),
      result.ok > 0 ? fixed(result.latencyMs.p50, 1) : "-",
      result.ok > 0 ? fixed(result.latencyMs.p99, 1) : "-",
      loadErrors(result),
      ratio(result.okPerSecond, value(runs[PLAIN_OF[key]])?.okPerSecond),
      b ? fixed(b.mean, 1) : "-",
      b ? `${fixed(b.shardMin, 1)}–${fixed(b.shardMax, 1)}` : "-",
      b ? `${b.shardsWritten}/${b.shards}` : "-",
    ];
  });
  const workers = config.citusWorkerUrls.map((url) => `worker :${port(url)}`);
  const cpuColumns: Column[] = [
    { title: "scenario", align: "left" },
    { title: "holds", align: "right" },
    { title: "holdfast", align: "right" },
    { title: "postgres / coordinator", align: "right" },
    ...workers.map((title): Column => ({ title, align: "right" })),
    { title: "other postgres", align: "right" },
    { title: "redis", align: "right" },
    { title: "bench", align: "right" },
    { title: "other", align: "right" },
    { title: "all µs/hold", align: "right" },
    { title: "busy", align: "right" },
  ];
  const cpuRows = results.flatMap(({ key, result }) => {
    const cpu = result?.cpu;
    if (!result || !cpu) return [];
    const ops = result.ok;
    const nodes = cpu.nodes ?? [];
    const db = nodes.find((n) => /^(postgres|coordinator) /.test(n.name));
    const measured = nodes.reduce((sum, n) => sum + n.seconds, 0);
    return [
      [
        CITUS_LABELS[key],
        fixed(ops),
        spent(cpu.seconds.server, ops),
        spent(db?.seconds, ops),
        ...workers.map((name) => spent(nodes.find((n) => n.name === name)?.seconds, ops)),
        spent(nodes.length > 0 ? cpu.seconds.postgres - measured : undefined, ops),
        spent(cpu.seconds.redis, ops),
        spent(cpu.seconds.bench, ops),
        spent(cpu.seconds.other, ops),
        fixed(cpuTotal(cpu)),
        `${Math.round(cpu.busy * 100)}%`,
      ],
    ];
  });
  const lines = [
    `Citus: hold placements, each on a fresh database with its own holdfast serve: plain Postgres (:${port(config.adminUrl)}) vs Citus (coordinator :${port(config.citusUrl)}, ${workers.join(", ")}) with citus.shard_count 32 and 4`,
    formatTable(CITUS_COLUMNS, rows),
    "holds/txn: holds per transaction during the measurement (the micro-batches; by the rows' xmin), over the shards written; by shard: the lowest and highest shard's mean",
    "",
  ];
  if (cpuRows.length > 0) {
    lines.push(
      "CPU by server during each measurement: seconds (µs per hold), from /proc; a server is its postmaster and its children (postgres / coordinator: the plain server in the plain runs; other postgres: every other Postgres process of the machine); bench: autocannon and the sampling",
      formatTable(cpuColumns, cpuRows),
      "",
    );
  }
  const tradeOff = (spread: "Spread" | "Hot") => {
    const plain = value(runs[`holds${spread}Plain`]);
    const parts = ([32, 4] as const).flatMap((shards) => {
      const run = value(runs[`holds${spread}Citus${shards}`]);
      if (!run) return [];
      const mean = run.batches ? `, ${fixed(run.batches.mean, 1)} holds/txn` : "";
      return [`${shards} shards ${ratio(run.okPerSecond, plain?.okPerSecond)} plain${mean}`];
    });
    if (parts.length === 0) return [];
    const plainMean = plain?.batches ? ` (plain: ${fixed(plain.batches.mean, 1)} holds/txn)` : "";
    return [`Citus, ${spread.toLowerCase()} holds: ${parts.join("; ")}${plainMean}`];
  };
  lines.push(...tradeOff("Spread"), ...tradeOff("Hot"));
  return lines;
}

function placementsJson(run: BackendPlacements) {
  const cpu = run.cpu;
  return {
    ...loadJson(run),
    shardCount: run.shardCount,
    batches: run.batches
      ? {
          holds: run.batches.holds,
          transactions: run.batches.transactions,
          meanHoldsPerTransaction: round(run.batches.mean, 2),
          shardMinMean: round(run.batches.shardMin, 2),
          shardMaxMean: round(run.batches.shardMax, 2),
          shardsWritten: run.batches.shardsWritten,
          shards: run.batches.shards,
        }
      : null,
    cpuSeconds: cpu
      ? {
          ...Object.fromEntries(CPU_GROUPS.map((g) => [g, round(cpu.seconds[g], 3)])),
          nodes: Object.fromEntries((cpu.nodes ?? []).map((n) => [n.name, round(n.seconds, 3)])),
        }
      : null,
  };
}

function loadJson(load: LoadResult) {
  return {
    perSecond: round(load.okPerSecond),
    ok: load.ok,
    durationS: round(load.durationS, 2),
    p50Ms: round(load.latencyMs.p50, 2),
    p99Ms: round(load.latencyMs.p99, 2),
    averageMs: round(load.latencyMs.average, 2),
    non2xx: load.non2xx,
    errors: load.errors,
    timeouts: load.timeouts,
    statusCodes: load.statusCodes,
    cpu: cpuJson(load.cpu),
  };
}

const cpuJson = (cpu: CpuUse | undefined) =>
  cpu
    ? {
        usPerOp: Object.fromEntries(CPU_GROUPS.map((g) => [g, round(cpu.usPerOp[g])])),
        ...(cpu.nodes
          ? { nodesUsPerOp: Object.fromEntries(cpu.nodes.map((n) => [n.name, round(n.usPerOp)])) }
          : {}),
        allUsPerOp: round(cpuTotal(cpu)),
        busy: round(cpu.busy, 3),
        steal: round(cpu.steal, 3),
        cores: cpu.cores,
      }
    : null;

function outcomeJson<T>(outcome: Outcome<T>, shape: (result: T) => object) {
  return outcome.status === "ok"
    ? { status: "ok", ...shape(outcome.result) }
    : { status: outcome.status, reason: outcome.reason };
}

const share = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? null : round(a / b, 3);

/** The JSON written to bench/results/latest.json. */
export function reportJson(report: Report) {
  const { runs, config } = report;
  const ceiling = (c: CeilingResult) => ({
    tps: round(c.tps),
    transactions: c.transactions,
    failed: c.failed,
    latencyAverageMs: c.latencyAverageMs ?? null,
    p50Ms: c.latencyMs ? round(c.latencyMs.p50, 2) : null,
    p99Ms: c.latencyMs ? round(c.latencyMs.p99, 2) : null,
    clients: c.clients,
    threads: c.threads,
    cpu: cpuJson(c.cpu),
  });
  const rate = (o: Outcome<LoadResult>) => value(o)?.okPerSecond;
  const small = value(runs.readsSmall);
  const large = value(runs.readsLarge);
  return {
    machine: report.machine,
    settings: {
      target: config.url ?? "own",
      connections: config.connections,
      durationS: config.durationS,
      readDurationS: config.readDurationS,
      warmupS: config.warmupS,
      pgbenchClients: config.pgbenchClients,
      pgbenchThreads: config.pgbenchThreads,
      spreadAccounts: config.spreadAccounts,
      settleHolds: config.settleHolds,
      historyEntries: config.historyEntries,
      holdfastDbPoolMax: config.holdfastPoolMax ?? "default",
    },
    scenarios: {
      holdsSpread: outcomeJson(runs.holdsSpread, loadJson),
      holdsHot: outcomeJson(runs.holdsHot, loadJson),
      holdsSpreadUnbatched: outcomeJson(runs.holdsSpreadUnbatched, loadJson),
      holdsEventsOn: outcomeJson(runs.holdsEventsOn, loadJson),
      holdsEventsOff: outcomeJson(runs.holdsEventsOff, loadJson),
      ceilingSpread: outcomeJson(runs.ceilingSpread, ceiling),
      ceilingHot: outcomeJson(runs.ceilingHot, ceiling),
      httpLimit: outcomeJson(runs.httpLimit, loadJson),
      settlements: outcomeJson(runs.settlements, (s) => ({
        perSecond: round(s.settlesPerSecond),
        settled: s.settled,
        unsettled: s.unsettled,
        spanS: round(s.spanS, 3),
        firstAfterS: round(s.firstAfterS, 3),
        deliveries: s.deliveries ?? null,
        placement: loadJson(s.placed),
        cpu: cpuJson(s.cpu),
      })),
      readsSmall: outcomeJson(runs.readsSmall, loadJson),
      readsLarge: outcomeJson(runs.readsLarge, loadJson),
      ...Object.fromEntries(
        CITUS_SCENARIOS.map((key) => [key, outcomeJson(runs[key], placementsJson)]),
      ),
    },
    ratios: {
      holdsSpreadVsCeiling: share(rate(runs.holdsSpread), value(runs.ceilingSpread)?.tps),
      holdsHotVsCeiling: share(rate(runs.holdsHot), value(runs.ceilingHot)?.tps),
      holdsSpreadVsHttpLimit: share(rate(runs.holdsSpread), rate(runs.httpLimit)),
      holdsHotVsHttpLimit: share(rate(runs.holdsHot), rate(runs.httpLimit)),
      batchedVsUnbatchedSpread: share(rate(runs.holdsSpread), rate(runs.holdsSpreadUnbatched)),
      eventsOnVsOffSpread: share(rate(runs.holdsEventsOn), rate(runs.holdsEventsOff)),
      readsLargeVsSmallP50: share(large?.latencyMs.p50, small?.latencyMs.p50),
      readsLargeVsSmallP99: share(large?.latencyMs.p99, small?.latencyMs.p99),
      holdsSpreadCitus32VsPlain: share(rate(runs.holdsSpreadCitus32), rate(runs.holdsSpreadPlain)),
      holdsSpreadCitus4VsPlain: share(rate(runs.holdsSpreadCitus4), rate(runs.holdsSpreadPlain)),
      holdsHotCitus32VsPlain: share(rate(runs.holdsHotCitus32), rate(runs.holdsHotPlain)),
      holdsHotCitus4VsPlain: share(rate(runs.holdsHotCitus4), rate(runs.holdsHotPlain)),
    },
    verify: report.verify ?? null,
    notes: report.notes,
  };
}
