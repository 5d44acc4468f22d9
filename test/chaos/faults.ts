import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { promisify } from "node:util";
import { Queue } from "bullmq";
import { type SQL, sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import postgres from "postgres";
import type { Database } from "../../src/db/client.ts";
import { BUCKETS } from "../../src/db/schema/bucket.ts";
import { bucketOf } from "../../src/ledger/ids.ts";
import { SWEEP_SCHEDULER_ID } from "../../src/workers/keep-sweep-scheduled.ts";
import { QUEUE_NAMES } from "../../src/workers/queues.ts";
import { SERVICE } from "../helpers/app.ts";
import { CITUS_WORKER_PORTS } from "../helpers/citus.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder } from "../helpers/workers.ts";
import type { Cluster, Member } from "./cluster.ts";
import type { ChaosTarget } from "./config.ts";
import type { Rng } from "./random.ts";
import { ENTRIES_PAGE, entryPageProblem } from "./workload.ts";

const run = promisify(execFile);

export type FaultKind =
  | "kill-worker"
  | "kill-api"
  | "wipe-redis"
  | "restart-postgres"
  | "restart-citus-worker"
  | "cancel-storm"
  | "terminate-streaming"
  | "statement-timeout";
export const FAULT_KINDS: FaultKind[] = [
  "kill-worker",
  "kill-api",
  "wipe-redis",
  "restart-postgres",
  "cancel-storm",
  "terminate-streaming",
  "statement-timeout",
];

export interface PlannedFault {
  kind: FaultKind;
  atMs: number;
}

export interface FaultRecord extends PlannedFault {
  /** When it actually started and how long it took, replacement process included. */
  startedMs: number;
  tookMs: number;
  detail: string;
}

/** The faults of a run on `target`: on Citus a worker node restarts instead of the Postgres. */
export function faultKinds(target: ChaosTarget): FaultKind[] {
  if (target === "plain") return FAULT_KINDS;
  return FAULT_KINDS.map((k) => (k === "restart-postgres" ? "restart-citus-worker" : k));
}

/** Each fault once per 30 s of run (at least once), at seeded times within 12 %–80 % of a round. */
export function planFaults(
  rng: Rng,
  durationMs: number,
  faults: FaultKind[] = FAULT_KINDS,
): PlannedFault[] {
  const rounds = Math.max(1, Math.floor(durationMs / 30_000));
  const roundMs = durationMs / rounds;
  const plan: PlannedFault[] = [];
  for (let r = 0; r < rounds; r++) {
    const kinds = [...faults];
    for (let i = kinds.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
    }
    const start = r * roundMs + roundMs * 0.12;
    const slot = (roundMs * 0.68) / kinds.length;
    kinds.forEach((kind, i) => {
      plan.push({ kind, atMs: Math.round(start + i * slot + rng.next() * slot * 0.5) });
    });
  }
  return plan;
}

export interface FaultDeps {
  cluster: Cluster;
  redis: Redis;
  prefix: string;
  /** The run's accounts: read while Postgres restarts, and while backends are cancelled. */
  accounts: string[];
  db: Database;
  /** How many requests the fulfilment webhook has had: grows while workers work. */
  fulfilmentRequests: () => number;
  defects: string[];
  log: (line: string) => void;
}

/** A database server's restart: the single Postgres, or a Citus worker node. */
export interface PostgresOutage {
  server: string;
  /** How long the restart command took. */
  restartMs: number;
  /** The probes' answers during the restart, by status (or network error). */
  probes: Record<string, number>;
  /** From the restart's start until each API was ready again (see `restartServer`). */
  recoveredMs: Record<string, number>;
}

/** What the APIs are probed with while a server restarts: `label` prefixes the answers' counts. */
interface Probe {
  label: string;
  path: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The status an API answers to a GET of `path` (with the service token), 0 without an answer. */
const status = (api: Member, path: string): Promise<number> =>
  fetch(`${api.baseUrl}${path}`, {
    headers: { authorization: `Bearer ${SERVICE}` },
    signal: AbortSignal.timeout(3000),
  })
    .then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    })
    .catch(() => 0);
/** How long a cancel or terminate storm lasts, and how many clients read through it. */
const STORM_MS = 5000;
const READERS = 8;

async function until<T>(check: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined || Date.now() > deadline) return value;
    await sleep(20);
  }
}

/** The worker processes that run an active job right now (BullMQ records the worker's name). */
async function workersWithActiveJobs(
  queues: Queue[],
  cluster: Cluster,
): Promise<{ member: Member; jobs: number }[]> {
  const names = new Map<string, number>();
  for (const queue of queues) {
    for (const job of await queue.getJobs(["active"])) {
      if (job?.processedBy) names.set(job.processedBy, (names.get(job.processedBy) ?? 0) + 1);
    }
  }
  return cluster.workers
    .map((member) => ({
      member,
      jobs: [...names].filter(([name]) => name.endsWith(`-${member.child.pid}`))[0]?.[1] ?? 0,
    }))
    .filter((w) => w.jobs > 0);
}

export class Faults {
  readonly records: FaultRecord[] = [];
  readonly outages: PostgresOutage[] = [];
  private readonly queues: Queue[];
  private readonly sweep: Queue;

  constructor(
    private readonly deps: FaultDeps,
    private readonly rng: Rng,
  ) {
    this.queues = [QUEUE_NAMES.fulfil, QUEUE_NAMES.expire].map(
      (name) => new Queue(name, { connection: { url: REDIS_URL }, prefix: deps.prefix }),
    );
    this.sweep = new Queue(QUEUE_NAMES.sweep, {
      connection: { url: REDIS_URL },
      prefix: deps.prefix,
    });
    for (const q of [...this.queues, this.sweep]) q.on("error", () => {});
  }

  async close() {
    await Promise.all([...this.queues, this.sweep].map((q) => q.close().catch(() => {})));
  }

  /**
   * After a fault the system must go on by itself: within 20 s the workers call the webhook
   * again and a hold is resolved (by a worker or a client) after the fault ended.
   */
  private async progress(kind: FaultKind, since: number): Promise<string> {
    const calls = this.deps.fulfilmentRequests();
    const deadline = Date.now() + 20_000;
    let webhookMs: number | undefined;
    let resolvedMs: number | undefined;
    while (Date.now() < deadline && (webhookMs === undefined || resolvedMs === undefined)) {
      if (webhookMs === undefined && this.deps.fulfilmentRequests() > calls)
        webhookMs = Date.now() - since;
      if (resolvedMs === undefined) {
        const [row] = await this.deps.db
          .execute<{ n: number }>(
            sql`SELECT count(*)::int AS n FROM holds WHERE resolved_at > to_timestamp(${since / 1000})`,
          )
          .catch(() => [{ n: 0 }]);
        if ((row?.n ?? 0) > 0) resolvedMs = Date.now() - since;
      }
      await sleep(100);
    }
    if (webhookMs === undefined || resolvedMs === undefined) {
      this.deps.defects.push(
        `no progress within 20 s after ${kind}: webhook called ${webhookMs !== undefined}, hold resolved ${resolvedMs !== undefined}`,
      );
    }
    return `progress: webhook after ${webhookMs ?? "-"} ms, a hold resolved after ${resolvedMs ?? "-"} ms`;
  }

  /** Runs the plan in order, each fault at its time or as soon as the one before is over. */
  async run(plan: PlannedFault[], startedAt: number) {
    for (const fault of plan) {
      const wait = startedAt + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      const began = Date.now();
      const what = await this[fault.kind]();
      const detail = `${what}; ${await this.progress(fault.kind, Date.now())}`;
      const record = {
        ...fault,
        startedMs: began - startedAt,
        tookMs: Date.now() - began,
        detail,
      };
      this.records.push(record);
      this.deps.log(
        `fault ${fault.kind} at +${(record.startedMs / 1000).toFixed(1)} s (${record.tookMs} ms): ${detail}`,
      );
    }
  }

  /** SIGKILL a worker that has jobs in hand (waiting up to 3 s for one), then start another. */
  private async "kill-worker"(): Promise<string> {
    const { cluster } = this.deps;
    let busy: { member: Member; jobs: number }[] = [];
    const deadline = Date.now() + 3000;
    while (busy.length === 0 && Date.now() < deadline) {
      busy = await workersWithActiveJobs(this.queues, cluster).catch(() => []);
      if (busy.length === 0) await sleep(50);
    }
    const victim = busy.length > 0 ? this.rng.pick(busy) : undefined;
    const member = victim?.member ?? this.rng.pick(cluster.workers);
    await cluster.kill(member);
    const replacement = await cluster.startWorker();
    return `SIGKILL ${member.name} (pid ${member.child.pid}) with ${victim?.jobs ?? 0} active job(s); started ${replacement.name}`;
  }

  /** SIGKILL an API process with requests in flight (waiting up to 3 s for some), start another. */
  private async "kill-api"(): Promise<string> {
    const { cluster } = this.deps;
    const member =
      (await until(() => {
        const busy = cluster.apis.filter((m) => m.inFlight > 0);
        return busy.length > 0 ? this.rng.pick(busy) : undefined;
      }, 3000)) ?? this.rng.pick(cluster.apis);
    const inFlight = member.inFlight;
    await cluster.kill(member);
    const replacement = await cluster.startApi();
    return `SIGKILL ${member.name} (pid ${member.child.pid}) with ${inFlight} request(s) in flight; started ${replacement.name} at ${replacement.baseUrl}`;
  }

  /** What a FLUSHDB does to us: every key under the prefix deleted (SCAN + DEL, never FLUSHDB). */
  private async "wipe-redis"(): Promise<string> {
    const deleted = await deleteKeysUnder(this.deps.redis, this.deps.prefix);
    const began = Date.now();
    // The workers notice the sweep's scheduler is gone and recreate it (every second here).
    let back = false;
    while (!back && Date.now() - began < 15_000) {
      back = (await this.sweep.getJobScheduler(SWEEP_SCHEDULER_ID).catch(() => undefined)) != null;
      if (!back) await sleep(100);
    }
    if (!back)
      this.deps.defects.push("the sweep's job scheduler was not recreated within 15 s of the wipe");
    return `deleted ${deleted} key(s) under ${this.deps.prefix}; sweep scheduler back after ${Date.now() - began} ms`;
  }

  /**
   * Runs `statement` (which counts the backends it acted on as `n`) every `everyMs` for
   * `forMs`, while READERS clients read accounts and full entry pages from every API: a read
   * after a failed stream is where the driver's stale row counter showed (a 404 for an
   * existing account, a page too long). The test's own pool is not among holdfast's backends
   * (its application_name differs).
   */
  private async storm(forMs: number, everyMs: number, statement: SQL): Promise<string> {
    const deadline = Date.now() + forMs;
    const reads = { ok: 0, unavailable: 0 };
    const readers = Array.from({ length: READERS }, (_, i) =>
      this.readUntil(deadline, this.rng.fork(`reader-${i}`), reads),
    );
    let hit = 0;
    let rounds = 0;
    while (Date.now() < deadline) {
      const [row] = await this.deps.db.execute<{ n: number }>(statement).catch(() => [{ n: 0 }]);
      hit += row?.n ?? 0;
      rounds++;
      await sleep(everyMs);
    }
    await Promise.all(readers);
    return `${hit} backend(s) hit in ${rounds} rounds over ${forMs} ms; reads meanwhile: ${reads.ok} whole, ${reads.unavailable} 503`;
  }

  /** Reads until `deadline`; any answer but the truth or 503 `unavailable` is a defect. */
  private async readUntil(deadline: number, rng: Rng, reads: { ok: number; unavailable: number }) {
    const { cluster, accounts, defects } = this.deps;
    while (Date.now() < deadline) {
      const api = cluster.apis.length > 0 ? rng.pick(cluster.apis) : undefined;
      if (!api) return;
      const id = rng.pick(accounts);
      const entries = rng.chance(0.5);
      const path = entries
        ? `/v1/accounts/${id}/entries?limit=${ENTRIES_PAGE}`
        : `/v1/accounts/${id}`;
      const answer = await fetch(`${api.baseUrl}${path}`, {
        headers: { authorization: `Bearer ${SERVICE}` },
        signal: AbortSignal.timeout(10_000),
      })
        .then(async (res) => ({ status: res.status, text: await res.text() }))
        .catch(() => undefined);
      if (!answer) continue;
      if (answer.status === 503 && answer.text.includes('"unavailable"')) {
        reads.unavailable++;
        continue;
      }
      // biome-ignore lint/suspicious/noExplicitAny: an answer as the API renders it
      let json: any;
      try {
        json = JSON.parse(answer.text);
      } catch {}
      const problem =
        answer.status !== 200
          ? "not 200"
          : entries
            ? entryPageProblem(json)
            : json?.id !== id
              ? "another account"
              : undefined;
      if (problem === undefined) reads.ok++;
      else
        defects.push(
          `GET ${path} on ${api.name} during a storm: ${problem}: ${answer.status} ${answer.text.slice(0, 300)}`,
        );
    }
  }

  /**
   * pg_cancel_backend on every backend of holdfast's APIs and workers that is running a
   * statement, every few ms, during the mixed workload: statements fail at every point of
   * their run, after some rows have streamed included (issue 12).
   */
  private async "cancel-storm"(): Promise<string> {
    return `cancel storm: ${await this.storm(
      STORM_MS,
      3,
      sql`SELECT count(*) FILTER (WHERE pg_cancel_backend(pid))::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'holdfast'
             AND state = 'active'`,
    )}`;
  }

  /**
   * pg_terminate_backend on holdfast's backends that are sending rows: blocked writing to the
   * client, or running a SELECT. The connection's next query, after the pool reconnects, must
   * not inherit the terminated one's error or rows (issue 12).
   */
  private async "terminate-streaming"(): Promise<string> {
    return `terminate streaming: ${await this.storm(
      STORM_MS,
      30,
      sql`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM (
            SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'holdfast'
               AND state = 'active' AND (wait_event = 'ClientWrite' OR query ILIKE 'select%')
             LIMIT 2) s`,
    )}`;
  }

  /**
   * An extra API whose statements time out after 2 ms serves its share of the workload for 4 s,
   * then stops: longer reads (entry pages) fail mid-stream, and every answer it gives must be a
   * 503 or the truth.
   */
  private async "statement-timeout"(): Promise<string> {
    const { cluster, defects } = this.deps;
    const api = await cluster.startApi({ HOLDFAST_STATEMENT_TIMEOUT_MS: "2" });
    await sleep(4000);
    const exit = await cluster.stop(api);
    if (exit.code !== 0)
      defects.push(`${api.name} exited ${exit.code} (${exit.signal}) on SIGTERM`);
    return `${api.name} with a 2 ms statement timeout served for 4 s, answering ${api.unavailable} time(s) 503 unavailable`;
  }

  /**
   * Restarts a database server with `restart` (pg_ctlcluster … restart: a fast shutdown, so
   * sessions are terminated). While it runs every API is probed every 100 ms with each of
   * `probes` and must answer 503 `unavailable` or a definite answer, never another 5xx;
   * afterwards each must be `ready` again by itself, without a restart of the process.
   */
  private async restartServer(options: {
    server: string;
    /** "the Postgres restart": for the defects. */
    what: string;
    probes: Probe[];
    restart: () => Promise<unknown>;
    ready: (api: Member) => Promise<boolean>;
  }): Promise<PostgresOutage> {
    const { cluster, defects } = this.deps;
    const outage: PostgresOutage = {
      server: options.server,
      restartMs: 0,
      probes: {},
      recoveredMs: {},
    };
    this.outages.push(outage);
    const began = Date.now();
    let restarting = true;
    const probing = (async () => {
      while (restarting) {
        await Promise.all(
          cluster.apis.flatMap((api) =>
            options.probes.map(async (probe) => {
              let label: string;
              try {
                const res = await fetch(`${api.baseUrl}${probe.path}`, {
                  headers: { authorization: `Bearer ${SERVICE}` },
                  signal: AbortSignal.timeout(3000),
                });
                const text = await res.text();
                label = String(res.status);
                if (res.status >= 500 && !(res.status === 503 && text.includes('"unavailable"'))) {
                  defects.push(
                    `${api.name} answered ${res.status} to ${probe.path} during ${options.what}: ${text}`,
                  );
                }
              } catch (error) {
                label = `network ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name}`;
              }
              label = `${probe.label}${label}`;
              outage.probes[label] = (outage.probes[label] ?? 0) + 1;
            }),
          ),
        );
        await sleep(100);
      }
    })();
    try {
      await options.restart();
    } finally {
      restarting = false;
      await probing;
    }
    outage.restartMs = Date.now() - began;
    await Promise.all(
      cluster.apis.map(async (api) => {
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          if (await options.ready(api).catch(() => false)) {
            outage.recoveredMs[api.name] = Date.now() - began;
            return;
          }
          await sleep(100);
        }
        defects.push(`${api.name} still not ready 30 s after ${options.what}`);
      }),
    );
    return outage;
  }

  /** pg_ctlcluster … main restart; afterwards every API must answer /readyz 200 again. */
  private async "restart-postgres"(): Promise<string> {
    const version = readdirSync("/etc/postgresql")[0]!;
    const outage = await this.restartServer({
      server: "postgres",
      what: "the Postgres restart",
      probes: [{ label: "", path: `/v1/accounts/${this.deps.accounts[0]}` }],
      restart: () =>
        run("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "restart"]),
      ready: (api) => status(api, "/readyz").then((s) => s === 200),
    });
    return `restart took ${outage.restartMs} ms; probes ${JSON.stringify(outage.probes)}; ready again after ${JSON.stringify(outage.recoveredMs)} ms`;
  }

  /**
   * pg_ctlcluster … hfcitus<port> restart of one Citus worker node, chosen by the seed (issue
   * 13). The APIs are probed with a read of an account whose shard is on that worker, one on
   * the other worker, and /readyz. /readyz pings the coordinator only, so it may answer 200
   * throughout; "ready again" is therefore /readyz 200 and the read of the restarted worker's
   * account answering 200, from each API by itself.
   *
   * A two-phase commit whose COMMIT PREPARED (or ROLLBACK PREPARED) did not reach the worker as
   * it went down stays prepared there, its rows locked and its writes unseen (the client was
   * told it committed), until the coordinator's 2PC recovery settles it. Citus's maintenance
   * daemon runs that every citus.recover_2pc_interval, 1 min by default, but the test cluster
   * has it off (test/scale/global-setup.ts counts two-phase commits), so the fault runs it as
   * the daemon would, once the worker is back.
   */
  private async "restart-citus-worker"(): Promise<string> {
    const { accounts } = this.deps;
    const port = this.rng.pick(CITUS_WORKER_PORTS);
    const nodes = await this.nodesOfAccounts();
    const onIt = accounts.filter((a) => nodes.get(a) === port);
    const elsewhere = accounts.filter((a) => nodes.get(a) !== port);
    const name = `hfcitus${port}`;
    const version = readdirSync("/etc/postgresql").find((v) =>
      existsSync(`/etc/postgresql/${v}/${name}`),
    );
    if (!version) throw new Error(`no Debian cluster ${name} under /etc/postgresql`);
    const probes: Probe[] = [{ label: "readyz ", path: "/readyz" }];
    if (onIt[0]) probes.unshift({ label: "on it ", path: `/v1/accounts/${onIt[0]}` });
    if (elsewhere[0]) probes.push({ label: "elsewhere ", path: `/v1/accounts/${elsewhere[0]}` });
    const outage = await this.restartServer({
      server: `citus worker 127.0.0.1:${port}`,
      what: `the restart of Citus worker ${port}`,
      probes,
      restart: () => run("pg_ctlcluster", ["--skip-systemctl-redirect", version, name, "restart"]),
      ready: async (api) =>
        (await status(api, "/readyz")) === 200 &&
        (onIt[0] === undefined || (await status(api, `/v1/accounts/${onIt[0]}`)) === 200),
    });
    const stranded = await this.preparedOn(port);
    let recovered = 0;
    let left = stranded;
    for (let i = 0; left > 0 && i < 10; i++) {
      if (i > 0) await sleep(1000);
      const [row] = await this.deps.db
        .execute<{ n: number }>(sql`SELECT recover_prepared_transactions()::int AS n`)
        .catch(() => [{ n: 0 }]);
      recovered += row?.n ?? 0;
      left = await this.preparedOn(port);
    }
    if (left > 0)
      this.deps.defects.push(
        `${left} prepared transaction(s) still on Citus worker ${port} after 10 recoveries`,
      );
    return (
      `restarted Citus worker 127.0.0.1:${port} (${onIt.length} of ${accounts.length} accounts' shards on it) ` +
      `in ${outage.restartMs} ms; probes ${JSON.stringify(outage.probes)}; ready again after ${JSON.stringify(outage.recoveredMs)} ms; ` +
      `${stranded} prepared transaction(s) stranded on it, ${recovered} recovered`
    );
  }

  /**
   * Prepared transactions of this run's database on a Citus worker node, over 2 s old (a
   * two-phase commit under way takes milliseconds).
   */
  private async preparedOn(port: number): Promise<number> {
    const [{ name } = { name: "" }] = await this.deps.db.execute<{ name: string }>(
      sql`SELECT current_database() AS name`,
    );
    const worker = postgres(`postgres://postgres@127.0.0.1:${port}/${name}`, {
      max: 1,
      onnotice: () => {},
      connect_timeout: 5,
    });
    try {
      const [row] = await worker<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_prepared_xacts
         WHERE database = current_database() AND prepared < now() - interval '2 s'`;
      return row?.n ?? 0;
    } finally {
      await worker.end();
    }
  }

  /** The worker node (its port) of each account's shard, from the coordinator's metadata. */
  private async nodesOfAccounts(): Promise<Map<string, number>> {
    const rows = await this.deps.db.execute<{ bucket: number; port: number }>(sql`
      SELECT b AS bucket, n.nodeport AS port
        FROM generate_series(0, ${BUCKETS - 1}::int) AS b
        JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('accounts', b)
        JOIN pg_dist_node n ON n.groupid = p.groupid`);
    const byBucket = new Map(rows.map((r) => [Number(r.bucket), Number(r.port)]));
    return new Map(this.deps.accounts.map((a) => [a, byBucket.get(bucketOf(a))!]));
  }
}
