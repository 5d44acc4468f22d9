import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { pino } from "pino";
import type { Database } from "../../src/db/client.ts";
import type { RedisNode } from "../../src/env.ts";
import type { Mount } from "../../src/http/app.ts";
import type { Logger } from "../../src/logger.ts";
import type { ClusterTarget, RedisTarget } from "../../src/process/connections.ts";
import { getHold, type Hold } from "../../src/reservations/hold.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { batchedScheduler } from "../../src/workers/schedule-hold.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { createTestApp, SERVICE, type TestApp } from "./app.ts";
import { contractFetch } from "./contract.ts";
import type { TestDatabase } from "./db.ts";
import { expectLedgerConsistent, fundedAccount } from "./ledger.ts";
import { type ServeProcess, spawnServe } from "./processes.ts";
import { spawnWorker, type WorkerProcess, waitFor, workerEnv } from "./workers.ts";

const run = promisify(execFile);

const HOST = "127.0.0.1";
const PORTS = { from: 7100, to: 7999 };
/** Redis Cluster's bus listens on the client port plus this. */
const BUS_OFFSET = 10_000;
const START_ATTEMPTS = 5;
/**
 * vitest ends its worker processes with a signal, so no "exit" handler of the test runs: the
 * kernel stops the redis-servers instead, as their parent dies (Linux; without setpriv a killed
 * run leaves them behind).
 */
const SETPRIV = "/usr/bin/setpriv";
const withParent = (argv: string[]) =>
  existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "TERM", ...argv] : argv;

export interface ClusterNodeProcess {
  port: number;
  id: string;
  child: ChildProcess;
  /** A plain (non-cluster) client of this node alone: CLUSTER commands, CONFIG, direct reads. */
  direct: Redis;
}

export interface RedisClusterOptions {
  /**
   * Replicas per master: 0 (three processes, the default) or 1 (six: three masters, each with
   * a replica that takes its slots over when it dies).
   */
  replicas?: 0 | 1;
  /**
   * cluster-node-timeout: how long a master may be unreachable before the others mark it as
   * failed and its replica is elected. Redis's default is 15 s; a failover test wants ~1 s.
   */
  nodeTimeoutMs?: number;
  /** `requirepass` and `masterauth` on every node: clients and replicas must authenticate. */
  password?: string;
  /**
   * With `password`: an ACL user allowed everything, whom the clients that `target` and
   * `seedsEnv` describe authenticate as (the helper itself as `default`, with `password`).
   */
  user?: { name: string; password: string };
  /**
   * TLS only, for clients, the cluster bus and replication (no plain port), with a certificate
   * for 127.0.0.1 from a throwaway CA made with openssl. Clients need no certificate.
   */
  tls?: boolean;
}

export interface Failover {
  /** The replica that now serves the killed master's slots. */
  promoted: number;
  /** From the SIGKILL until every live node names `promoted` as the owner of those slots. */
  ms: number;
}

export interface TestRedisCluster {
  /** Every node, masters and replicas; a killed one stays listed. */
  nodes: ClusterNodeProcess[];
  /** The REDIS_CLUSTER_NODES entries of these ports (all nodes by default). */
  seeds(...ports: number[]): RedisNode[];
  /** A client's target: these seeds (all nodes by default), with the password and the CA. */
  target(...ports: number[]): ClusterTarget;
  /**
   * REDIS_CLUSTER_NODES as the environment spells it: `redis[s]://:password@host:port,…` on a
   * cluster with a password or TLS. A process needs NODE_EXTRA_CA_CERTS=caFile for TLS.
   */
  seedsEnv(...ports: number[]): string;
  /** The CA's certificate (PEM) and its file, with `tls`. */
  ca?: { pem: string; file: string };
  /** The hash slot of a key, as the cluster computes it. */
  slotOf(key: string): Promise<number>;
  /** The port of the master serving `slot`, as `node` sees it (the first live node if none). */
  ownerOf(slot: number, node?: ClusterNodeProcess): Promise<number>;
  /** Moves `slot` and its keys to the master on `toPort`, as redis-cli --cluster reshard does. */
  migrateSlot(slot: number, toPort: number): Promise<{ keys: number }>;
  /** SIGTERM to one node, resolved once it has exited. */
  stopNode(port: number): Promise<void>;
  /** The ports of the replicas of the master on `port`, as the cluster lists them. */
  replicasOf(port: number): Promise<number[]>;
  /**
   * SIGKILLs the master on `port` (no shutdown, no last write: a crash) and resolves once
   * every live node reports cluster_state:ok and names one of its former replicas as the owner
   * of each of its slots. Needs a cluster started with `replicas: 1`.
   */
  killMaster(port: number, timeoutMs?: number): Promise<Failover>;
  /** Stops every node and removes the temporary directory. */
  stop(): Promise<void>;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/**
 * Free ports (their bus ports free too), from a random point of the range: test files run
 * in parallel, and two of them starting clusters should rarely try the same ports. When they
 * do, a redis-server fails to bind and the start is tried again on other ports.
 */
async function freePorts(count: number): Promise<number[]> {
  const span = PORTS.to - PORTS.from + 1;
  const offset = Math.floor(Math.random() * span);
  const ports: number[] = [];
  for (let i = 0; i < span && ports.length < count; i++) {
    const port = PORTS.from + ((offset + i * 7) % span);
    if (ports.includes(port)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + BUS_OFFSET))) ports.push(port);
  }
  if (ports.length < count) throw new Error(`no ${count} free ports in ${PORTS.from}-${PORTS.to}`);
  return ports;
}

function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 3000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill(signal);
  });
}

/** A CA, and a certificate it signed for 127.0.0.1, in `dir`: what a TLS cluster needs. */
async function makeCertificates(dir: string): Promise<{ pem: string; file: string }> {
  const file = (name: string) => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-days",
    "1",
    "-subj",
    "/CN=holdfast test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  ]);
  await run("openssl", [
    "req",
    ...ec,
    "-subj",
    `/CN=${HOST}`,
    "-keyout",
    file("node.key"),
    "-out",
    file("node.csr"),
  ]);
  await writeFile(file("node.ext"), `subjectAltName=IP:${HOST}\n`);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    file("node.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    file("node.ext"),
    "-out",
    file("node.pem"),
  ]);
  return { pem: await readFile(file("ca.pem"), "utf8"), file: file("ca.pem") };
}

/** Starts redis-server in cluster mode on `port`; resolves once it accepts connections. */
function startNode(dir: string, port: number, options: RedisClusterOptions): Promise<ChildProcess> {
  const listen = options.tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        join(dir, "node.pem"),
        "--tls-key-file",
        join(dir, "node.key"),
        "--tls-ca-cert-file",
        join(dir, "ca.pem"),
        "--tls-auth-clients",
        "no",
        "--tls-cluster",
        "yes",
        "--tls-replication",
        "yes",
      ]
    : ["--port", String(port)];
  const auth = options.password
    ? ["--requirepass", options.password, "--masterauth", options.password]
    : [];
  if (options.password && options.user)
    auth.push("--user", options.user.name, "on", `>${options.user.password}`, "~*", "&*", "+@all");
  const [command, ...args] = withParent([
    "redis-server",
    ...listen,
    ...auth,
    "--bind",
    HOST,
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    join(dir, `nodes-${port}.conf`),
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    ...(options.nodeTimeoutMs ? ["--cluster-node-timeout", String(options.nodeTimeoutMs)] : []),
    // A replica's first sync would otherwise wait 5 s for more replicas to share the transfer.
    ...(options.replicas ? ["--repl-diskless-sync-delay", "0"] : []),
  ]);
  const child = spawn(command!, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server on ${port} did not start:\n${output}`));
    }, 10_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on ${port} exited with ${code}:\n${output}`));
    });
  });
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `<id> <host>:<port>@<bus> <flags> <master id|-> …`, one line per node (CLUSTER NODES). */
function parseClusterNodes(text: string) {
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id, address, flags, master] = line.split(" ");
      const port = Number(/:(\d+)@/.exec(address!)?.[1]);
      return { id: id!, port, flags: flags!.split(","), master: master! };
    });
}

async function tryStart(options: RedisClusterOptions): Promise<TestRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "holdfast-redis-cluster-"));
  const replicas = options.replicas ?? 0;
  const masters = 3;
  const ports = await freePorts(masters * (1 + replicas));
  const ca = options.tls ? await makeCertificates(dir) : undefined;
  const { password } = options;
  // What the clients under test authenticate with.
  const client = password
    ? options.user
      ? { username: options.user.name, password: options.user.password }
      : { password }
    : {};
  const children: ChildProcess[] = [];
  const directs: Redis[] = [];
  const stop = async () => {
    for (const direct of directs) direct.disconnect();
    await Promise.all(children.map((child) => stopProcess(child)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const started = await Promise.allSettled(ports.map((port) => startNode(dir, port, options)));
    for (const s of started) if (s.status === "fulfilled") children.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;

    await run(
      "redis-cli",
      [
        ...(ca ? ["--tls", "--cacert", ca.file] : []),
        "--cluster",
        "create",
        ...ports.map((p) => `${HOST}:${p}`),
        "--cluster-replicas",
        String(replicas),
        "--cluster-yes",
      ],
      // REDISCLI_AUTH rather than -a, which redis-cli warns about.
      {
        timeout: 30_000,
        env: { ...process.env, ...(password ? { REDISCLI_AUTH: password } : {}) },
      },
    );
    for (const port of ports) {
      const direct = new Redis({
        host: HOST,
        port,
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        ...(password ? { password } : {}),
        ...(ca ? { tls: { ca: ca.pem } } : {}),
      });
      direct.on("error", () => {});
      directs.push(direct);
    }
    await Promise.all(
      directs.map((direct) =>
        waitUntil(
          async () => ((await direct.cluster("INFO")) as string).includes("cluster_state:ok"),
          `cluster_state:ok on ${direct.options.port}`,
        ),
      ),
    );
    // Every node must also know every other's slots, and every master its replica, before a
    // client asks any of them: CLUSTER SLOTS lists a range as [start, end, master, …replicas].
    await Promise.all(
      directs.map((direct) =>
        waitUntil(async () => {
          const ranges = await direct.cluster("SLOTS");
          return ranges.length === masters && ranges.every((r) => r.length === 3 + replicas);
        }, `the slot map on ${direct.options.port}`),
      ),
    );
    // And each replica in sync, so that WAIT on a master can be answered.
    if (replicas)
      await Promise.all(
        directs.map((direct) =>
          waitUntil(async () => {
            const info = (await direct.info("replication")) as string;
            return info.includes("role:master") || info.includes("master_link_status:up");
          }, `the replication link of ${direct.options.port}`),
        ),
      );
  } catch (error) {
    await stop();
    throw error;
  }

  const nodes: ClusterNodeProcess[] = await Promise.all(
    ports.map(async (port, i) => ({
      port,
      id: (await directs[i]!.cluster("MYID")) as string,
      child: children[i]!,
      direct: directs[i]!,
    })),
  );
  const node = (port: number) => {
    const found = nodes.find((n) => n.port === port);
    if (!found) throw new Error(`no cluster node on port ${port}`);
    return found;
  };
  const isLive = (n: ClusterNodeProcess) =>
    n.child.exitCode === null && n.child.signalCode === null;
  const live = () => nodes.filter(isLive);
  const seeds = (...only: number[]) =>
    (only.length ? only : ports).map((port) => ({ host: HOST, port }));
  const ownerOf = async (slot: number, asked = live()[0]!) => {
    // [start, end, [host, port, id] of the master, …replicas] per range of slots.
    const ranges = await asked.direct.cluster("SLOTS");
    const master = ranges.find(([start, end]) => start <= slot && slot <= end)?.[2];
    if (!master) throw new Error(`slot ${slot} has no owner`);
    return master[1];
  };

  const replicasOf = async (port: number) =>
    parseClusterNodes((await live()[0]!.direct.cluster("NODES")) as string)
      .filter((n) => n.master === node(port).id && !n.flags.includes("fail"))
      .map((n) => n.port);

  const scheme = ca ? "rediss://" : password ? "redis://" : "";
  const userinfo = client.password
    ? `${encodeURIComponent(client.username ?? "")}:${encodeURIComponent(client.password)}@`
    : "";
  return {
    nodes,
    seeds,
    target: (...only) => ({
      clusterNodes: seeds(...only),
      ...client,
      ...(ca ? { tls: { ca: ca.pem } } : {}),
    }),
    seedsEnv: (...only) =>
      seeds(...only)
        .map(({ host, port }) => `${scheme}${userinfo}${host}:${port}`)
        .join(","),
    ca,
    slotOf: async (key) => (await live()[0]!.direct.cluster("KEYSLOT", key)) as number,
    ownerOf,
    async migrateSlot(slot, toPort) {
      const source = node(await ownerOf(slot));
      const target = node(toPort);
      if (source === target) return { keys: 0 };
      // The order Redis documents for resharding: importing first, so that the ASK redirects
      // the source gives once it is migrating find the target ready.
      await target.direct.cluster("SETSLOT", slot, "IMPORTING", source.id);
      await source.direct.cluster("SETSLOT", slot, "MIGRATING", target.id);
      // Up to 1000 keys per MIGRATE, one atomic step: BullMQ's scripts read job hashes they do
      // not declare as keys, and Redis only checks the declared ones, so a queue split between
      // two nodes for longer than one command could be misread.
      let moved = 0;
      for (;;) {
        const keys = (await source.direct.cluster("GETKEYSINSLOT", slot, 1000)) as string[];
        if (keys.length === 0) break;
        const auth = password ? ["AUTH", password] : [];
        await source.direct.call("MIGRATE", HOST, toPort, "", 0, 10_000, ...auth, "KEYS", ...keys);
        moved += keys.length;
      }
      // The target first, so that a node it tells about the change does not send the slot's
      // clients back to the source.
      await target.direct.cluster("SETSLOT", slot, "NODE", target.id);
      await source.direct.cluster("SETSLOT", slot, "NODE", target.id);
      for (const other of live())
        if (other !== source && other !== target)
          await other.direct.cluster("SETSLOT", slot, "NODE", target.id);
      return { keys: moved };
    },
    async stopNode(port) {
      const stopped = node(port);
      stopped.direct.disconnect();
      await stopProcess(stopped.child);
    },
    replicasOf,
    async killMaster(port, timeoutMs = 30_000) {
      const killed = node(port);
      const candidates = await replicasOf(port);
      if (candidates.length === 0) throw new Error(`the master on ${port} has no replica`);
      const ranges = (await killed.direct.cluster("SLOTS")).filter(
        ([, , master]) => master?.[1] === port,
      );
      const started = Date.now();
      killed.direct.disconnect();
      await stopProcess(killed.child, "SIGKILL");
      let promoted: number | undefined;
      await waitUntil(
        async () => {
          const views = await Promise.all(
            live().map(async (n) => {
              const info = (await n.direct.cluster("INFO")) as string;
              if (!info.includes("cluster_state:ok")) return undefined;
              const slots = await n.direct.cluster("SLOTS");
              const owners = ranges.map(
                ([start]) => slots.find(([from, to]) => from <= start && start <= to)?.[2]?.[1],
              );
              return owners.every((o) => o === owners[0]) ? owners[0] : undefined;
            }),
          );
          promoted = views[0];
          return (
            promoted !== undefined &&
            candidates.includes(promoted) &&
            views.every((v) => v === promoted)
          );
        },
        `a replica of ${port} to serve its slots on every live node`,
        timeoutMs,
      );
      return { promoted: promoted!, ms: Date.now() - started };
    },
    stop,
  };
}

/**
 * A real Redis Cluster of three masters, without replicas unless `replicas: 1`, on free ports
 * in 7100-7999, with its files in a temporary directory: redis-server in cluster mode, joined
 * by `redis-cli --cluster create`; with a password and TLS when asked. No persistence (`--save "" --appendonly no`): a killed
 * master's data survives only on its replica. Resolves once every node reports
 * cluster_state:ok and knows the whole slot map, and every replica is in sync.
 */
export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<TestRedisCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await tryStart(options);
    } catch (error) {
      // Another test file may have taken a port between the check and the bind.
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

// What the tests of holdfast on a cluster share: the workers' log, and holds expiring.

export interface LogLine {
  level: number;
  /** Milliseconds since the epoch (pino's default). */
  time: number;
  msg: string;
  err?: { message?: string };
  reason?: string;
}

export interface RecordingLogger {
  logger: Logger;
  lines: LogLine[];
  /** Worker errors and failed job attempts: a MOVED the client did not follow would be one. */
  trouble(): LogLine[];
}

/** A logger at warn that keeps what the workers log, so that a test can count their errors. */
export function recordingLogger(): RecordingLogger {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n"))
        if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return {
    logger: pino({ level: "warn" }, sink),
    lines,
    trouble: () => lines.filter((line) => line.level >= 40),
  };
}

/** Resolves with the holds once every one of them has expired. */
export function waitForExpired(
  db: Database,
  holdIds: string[],
  timeoutMs?: number,
): Promise<Hold[]> {
  return waitFor(
    async () => {
      const holds = await Promise.all(holdIds.map((id) => getHold(db, id)));
      return holds.every((h) => h.status === "expired") && holds;
    },
    { what: `${holdIds.length} hold(s) to expire`, timeoutMs },
  );
}

/**
 * holdfast on a cluster as a deployment runs it: an API (the test app) whose purchases enqueue
 * their expire jobs, a producer, and the workers (the sweep only every minute, workerEnv), all
 * seeded with `seed`. `stop` closes whatever is still open (a test may close the workers or the
 * producer itself and clear them), checks the ledger, drops the database, then stops the
 * cluster.
 */
export interface ClusterStack {
  t: TestApp;
  producer: Producer | undefined;
  workers: RunningWorkers | undefined;
  stop(): Promise<void>;
}

export async function startClusterStack(options: {
  cluster: TestRedisCluster;
  db: TestDatabase;
  seed: RedisTarget;
  prefix: string;
  logger: Logger;
  mounts?: (producer: Producer) => Mount[];
}): Promise<ClusterStack> {
  const { cluster, db, seed, prefix, logger } = options;
  const producer = await connectProducer(seed, prefix);
  const t = await createTestApp({
    db,
    redis: seed,
    env: { HOLDFAST_QUEUE_PREFIX: prefix },
    holdPlaced: batchedScheduler(producer.queues, { fulfilment: false }),
    mounts: options.mounts?.(producer),
  });
  const workers = await startWorkers({
    db: db.db,
    env: workerEnv({ HOLDFAST_QUEUE_PREFIX: prefix }),
    logger,
    redis: seed,
  });
  const stack: ClusterStack = {
    t,
    producer,
    workers,
    async stop() {
      try {
        await stack.workers?.close();
        await stack.producer?.close();
        await t.close();
        await expectLedgerConsistent(db.db).finally(() => db.drop());
      } finally {
        await cluster.stop();
      }
    },
  };
  return stack;
}

/**
 * `holdfast serve` and `holdfast worker` with `env`. When either fails to start, the other is
 * stopped before the error is thrown: a serve process does not exit when Redis goes away.
 */
export async function spawnServeAndWorker(
  databaseUrl: string,
  env: Record<string, string>,
): Promise<{ serve: ServeProcess; worker: WorkerProcess }> {
  const [served, working] = await Promise.allSettled([
    spawnServe(databaseUrl, env),
    spawnWorker(env),
  ]);
  if (served.status === "rejected" || working.status === "rejected") {
    if (served.status === "fulfilled") await served.value.stop();
    if (working.status === "fulfilled") working.value.child.kill("SIGTERM");
    throw served.status === "rejected" ? served.reason : (working as PromiseRejectedResult).reason;
  }
  return { serve: served.value, worker: working.value };
}

/** Funds `accountId` with 50 and buys 10 through `baseUrl`, the hold expiring in 1 s: its id. */
export async function purchaseExpiringSoon(baseUrl: string, db: Database, accountId: string) {
  await fundedAccount(db, accountId, 50);
  const r = await contractFetch(`${baseUrl}/v1/purchases`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${SERVICE}`,
      "content-type": "application/json",
      "idempotency-key": randomUUID(),
    },
    body: JSON.stringify({ accountId, amount: 10, expiresInSeconds: 1 }),
  });
  if (r.status !== 201) throw new Error(`purchase answered ${r.status}: ${await r.text()}`);
  return ((await r.json()) as { hold: { id: string } }).hold.id;
}
