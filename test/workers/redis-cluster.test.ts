import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboard } from "../../src/http/dashboard.ts";
import { type RedisTarget, redisEvictionWarning } from "../../src/process/connections.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { expireJobId } from "../../src/workers/queues.ts";
import { sweepHolds } from "../../src/workers/sweep-holds.ts";
import { ADMIN, SERVICE, type TestApp } from "../helpers/app.ts";
import { contractFetch } from "../helpers/contract.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";
import {
  type ClusterStack,
  purchaseExpiringSoon,
  recordingLogger,
  spawnServeAndWorker,
  startClusterStack,
  startRedisCluster,
  type TestRedisCluster,
  waitForExpired,
} from "../helpers/redis-cluster.ts";
import { testPrefix, waitFor } from "../helpers/workers.ts";

// One cluster for the file: starting one takes about two seconds. The tests run in order; the
// last one stops a node.
let cluster: TestRedisCluster;
let db: TestDatabase;
let stack: ClusterStack;
let t: TestApp;
const prefix = testPrefix();
let slot: number;

const log = recordingLogger();
const workerTrouble = log.trouble;

/** A master that does not serve `ofSlot` at the moment. */
async function notOwner(ofSlot: number): Promise<number> {
  const owner = await cluster.ownerOf(ofSlot);
  return cluster.nodes.find((n) => n.port !== owner)!.port;
}

beforeAll(async () => {
  [cluster, db] = await Promise.all([startRedisCluster(), createTestDatabase()]);
  slot = await cluster.slotOf(`${prefix}:holds-expire`);
  // Every client is seeded with one node that does not own the queues' slot: it has to learn
  // the slot map and follow it, or every command would fail with MOVED.
  const seed: RedisTarget = { clusterNodes: cluster.seeds(await notOwner(slot)) };
  stack = await startClusterStack({
    cluster,
    db,
    seed,
    prefix,
    logger: log.logger,
    mounts: (producer) => [dashboard(producer.queues.all)],
  });
  t = stack.t;
});

afterAll(() => stack?.stop());

const purchase = (body: Record<string, unknown>) =>
  t.call("POST", "/v1/purchases", { token: SERVICE, key: randomUUID(), body });

const expired = (holdIds: string[]) => waitForExpired(db.db, holdIds);

describe("on a 3-master Redis Cluster", () => {
  it("/readyz is 200 through a seed node that does not own the queues' slot", async () => {
    const r = await t.call("GET", "/readyz", { token: null });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: "ok", postgres: "ok", redis: "ok" });
  });

  it("a purchase enqueues its expire job on the slot's master, and a worker expires the hold", async () => {
    await fundedAccount(db.db, "cluster-1", 50);
    const r = await purchase({ accountId: "cluster-1", amount: 20, expiresInSeconds: 1 });
    expect(r.status).toBe(201);
    const holdId: string = r.json.hold.id;
    const ownerPort = await cluster.ownerOf(slot);
    const jobKey = stack.producer!.queues.expire.toKey(expireJobId(holdId));
    const onOwner = cluster.nodes.find((n) => n.port === ownerPort)!;
    expect(await onOwner.direct.exists(jobKey)).toBe(1);

    const [hold] = await expired([holdId]);
    expect(hold).toMatchObject({ status: "expired", reason: "expired", settledAmount: null });
    const account = await t.call("GET", "/v1/accounts/cluster-1", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 50, held: 0, available: 50 });
    expect(workerTrouble()).toEqual([]);
  });

  it("the sweep finds, through one pipeline to the cluster, the job a pending hold lost", async () => {
    await fundedAccount(db.db, "cluster-sweep", 10);
    // Placed without an enqueue, as if Redis had lost its job.
    const { hold } = await placeHold(db.db, {
      accountId: "cluster-sweep",
      amount: 5,
      expiresInSeconds: 600,
    });
    const sweep = () =>
      sweepHolds({ db: db.db, queues: stack.producer!.queues, fulfilment: false });
    expect((await sweep()).rescheduled).toBe(1);
    const job = await stack.producer!.queues.expire.getJob(expireJobId(hold.id));
    expect(await job?.getState()).toBe("delayed");
    expect((await sweep()).rescheduled).toBe(0);
  });

  it("the dashboard reads the queues and the Redis stats from the cluster", async () => {
    const admin = { token: ADMIN };
    // The expire job of the hold above, once the worker has marked it completed.
    await waitFor(
      async () => {
        const r = await t.call("GET", "/admin/queues/api/queues", admin);
        const queues = r.json.queues as { name: string; counts: Record<string, number> }[];
        return queues.find((q) => q.name === "holds-expire")?.counts.completed === 1;
      },
      { what: "the dashboard to count the completed expire job" },
    );
    const stats = await t.call("GET", "/admin/queues/api/redis/stats", admin);
    expect(stats.status).toBe(200);
  });

  it("the eviction warning asks every master, not only the one a command lands on", async () => {
    expect(await redisEvictionWarning(t.redis)).toBeUndefined();
    const node = cluster.nodes[2]!;
    await node.direct.config("SET", "maxmemory-policy", "allkeys-lru");
    try {
      expect(await redisEvictionWarning(t.redis)).toMatch(
        `maxmemory-policy is allkeys-lru on master 127.0.0.1:${node.port}: BullMQ needs noeviction`,
      );
    } finally {
      await node.direct.config("SET", "maxmemory-policy", "noeviction");
    }
  });

  it("delayed jobs survive the migration of their slot to another master", async () => {
    await fundedAccount(db.db, "cluster-2", 1000);
    const placed = await Promise.all(
      Array.from({ length: 20 }, () =>
        purchase({ accountId: "cluster-2", amount: 5, expiresInSeconds: 3 }),
      ),
    );
    expect(placed.map((r) => r.status)).toEqual(placed.map(() => 201));
    const before = placed.map((r) => r.json.hold.id as string);
    expect(
      await stack.producer!.queues.expire.getJobCountByTypes("delayed"),
    ).toBeGreaterThanOrEqual(20);

    const from = await cluster.ownerOf(slot);
    const to = cluster.nodes.find((n) => n.port !== from)!.port;
    const { keys } = await cluster.migrateSlot(slot, to);
    // The job hashes and the queues' own keys all moved.
    expect(keys).toBeGreaterThan(20);
    for (const node of cluster.nodes) expect(await cluster.ownerOf(slot, node)).toBe(to);

    // A purchase after the move: the producer follows the slot to its new master.
    const after = await purchase({ accountId: "cluster-2", amount: 5, expiresInSeconds: 1 });
    expect(after.status).toBe(201);
    const onNewOwner = cluster.nodes.find((n) => n.port === to)!;
    const jobKey = stack.producer!.queues.expire.toKey(expireJobId(after.json.hold.id));
    expect(await onNewOwner.direct.exists(jobKey)).toBe(1);

    await expired([...before, after.json.hold.id]);
    // A redirect during the move may cost a retried command; it must not cost jobs.
    expect(workerTrouble().length).toBeLessThanOrEqual(3);
  });

  it("holdfast serve and holdfast worker start with REDIS_CLUSTER_NODES naming a non-owning node", async () => {
    const cliPrefix = testPrefix();
    const cliSlot = await cluster.slotOf(`${cliPrefix}:x`);
    const seed = cluster.seedsEnv(await notOwner(cliSlot));
    const env = {
      DATABASE_URL: db.url,
      // Unreachable: with REDIS_CLUSTER_NODES set, nothing may use it.
      REDIS_URL: "redis://127.0.0.1:1",
      REDIS_CLUSTER_NODES: seed,
      HOLDFAST_QUEUE_PREFIX: cliPrefix,
      HOLDFAST_ADMIN_TOKEN: ADMIN,
      HOLDFAST_SERVICE_TOKEN: SERVICE,
    };
    const { serve, worker } = await spawnServeAndWorker(db.url, env);
    try {
      const ready = await contractFetch(`${serve.baseUrl}/readyz`);
      expect(ready.status).toBe(200);
      const holdId = await purchaseExpiringSoon(serve.baseUrl, db.db, "cluster-cli");
      // Enqueued by serve itself: the worker's sweep would come only after 30 s.
      const ownerPort = await cluster.ownerOf(cliSlot);
      const owner = cluster.nodes.find((n) => n.port === ownerPort)!;
      const jobKey = `${cliPrefix}:holds-expire:${expireJobId(holdId)}`;
      expect(await owner.direct.exists(jobKey)).toBe(1);
      await expired([holdId]);
      expect(worker.output()).not.toMatch(/"level":(40|50|60)/);
    } finally {
      worker.child.kill("SIGTERM");
      expect(await serve.stop()).toBe(0);
      expect(await worker.exited).toBe(0);
    }
  });

  it("/readyz is 503 naming redis once the master of the queues' slot is down", async () => {
    // The workers and producers first, so that none of them is left retrying a dead node.
    await stack.workers!.close();
    stack.workers = undefined;
    await stack.producer!.close();
    stack.producer = undefined;
    await cluster.stopNode(await cluster.ownerOf(slot));

    const r = await t.call("GET", "/readyz", { token: null });
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({
      detail: "unreachable: redis",
      postgres: "ok",
      redis: "down",
    });
  });
});
