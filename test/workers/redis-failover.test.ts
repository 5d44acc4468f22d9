import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RedisTarget } from "../../src/process/connections.ts";
import { expireJobId } from "../../src/workers/queues.ts";
import { SERVICE, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";
import {
  type ClusterStack,
  recordingLogger,
  startClusterStack,
  startRedisCluster,
  type TestRedisCluster,
  waitForExpired,
} from "../helpers/redis-cluster.ts";
import { testPrefix, waitFor } from "../helpers/workers.ts";

// Its own cluster, with a replica per master, so that redis-cluster.test.ts keeps a small one.
// cluster-node-timeout 1 s: the masters left mark a silent one as failed after about a second,
// and its replica is elected within the next one or two.
let cluster: TestRedisCluster;
let db: TestDatabase;
let stack: ClusterStack;
let t: TestApp;
const prefix = testPrefix();
const log = recordingLogger();
const HOLDS = 24;
/** The BullMQ workers startWorkers runs without FULFILMENT_URL: expire, sweep, webhooks. */
const WORKERS = 3;

beforeAll(async () => {
  [cluster, db] = await Promise.all([
    startRedisCluster({ replicas: 1, nodeTimeoutMs: 1000 }),
    createTestDatabase(),
  ]);
  // Every node as a seed, as a deployment would list them: the one killed below among them.
  // The sweep only every minute, past the end of the test: every hold below must expire
  // through its own expire job, the one the dead master held.
  const seed: RedisTarget = { clusterNodes: cluster.seeds() };
  stack = await startClusterStack({ cluster, db, seed, prefix, logger: log.logger });
  t = stack.t;
});

afterAll(() => stack?.stop());

const purchase = (body: Record<string, unknown>) =>
  t.call("POST", "/v1/purchases", { token: SERVICE, key: randomUUID(), body });

describe("on a Redis Cluster with a replica per master", () => {
  it("expire jobs survive a SIGKILLed master: its replica serves them and the workers run them", async () => {
    expect((await t.call("GET", "/readyz", { token: null })).status).toBe(200);
    await fundedAccount(db.db, "failover", 1000);
    const placed = await Promise.all(
      Array.from({ length: HOLDS }, () =>
        purchase({ accountId: "failover", amount: 5, expiresInSeconds: 2 }),
      ),
    );
    expect(placed.map((r) => r.status)).toEqual(placed.map(() => 201));
    const before = placed.map((r) => r.json.hold.id as string);
    const jobKey = (holdId: string) => stack.producer!.queues.expire.toKey(expireJobId(holdId));

    const slot = await cluster.slotOf(`${prefix}:holds-expire`);
    const ownerPort = await cluster.ownerOf(slot);
    const master = cluster.nodes.find((n) => n.port === ownerPort)!;
    const onMaster = await Promise.all(before.map((id) => master.direct.exists(jobKey(id))));
    expect(onMaster.every((n) => n === 1)).toBe(true);

    // Replication is asynchronous: a master acknowledges a write before its replica has it.
    // WAIT 1 blocks until a replica has acknowledged this connection's writes; this one has
    // written nothing (its WAIT would answer at once), hence the INCR first, which follows
    // every enqueue in the master's replication stream. So the master dies only once its
    // replica has every job: that is what makes this test deterministic.
    //
    // Production has no such step: the jobs a master accepted in its last moment (usually
    // well under a second of writes) can vanish with it. BullMQ cannot prevent that: it has no
    // WAIT-after-enqueue option, ioredis sends a keyless WAIT to any node of a cluster, and
    // WAIT does not make Redis strongly consistent anyway. min-replicas-to-write with
    // min-replicas-max-lag on the masters only bounds the loss, at the price of refused
    // enqueues while no replica keeps up. holdfast does not need Redis to keep jobs: Postgres
    // holds every hold, and the sweep (src/workers/sweep-holds.ts) enqueues again the missing
    // expire and fulfil jobs of pending holds and expires overdue ones itself
    // (keepSweepScheduled recreates its scheduler if that vanished too). So a lost job, or a
    // purchase whose enqueue failed while no master served the slot, delays its hold by at
    // most HOLDFAST_SWEEP_INTERVAL_MS (30 s by default) and loses nothing. Webhook lanes are
    // read from Postgres on every dispatch tick.
    await master.direct.incr(`${prefix}:replicated`);
    expect(await master.direct.call("WAIT", 1, 5000)).toBe(1);

    const killedAt = Date.now();
    const failover = await cluster.killMaster(ownerPort);
    const promoted = cluster.nodes.find((n) => n.port === failover.promoted)!;
    const kept = (await Promise.all(before.map((id) => promoted.direct.exists(jobKey(id))))).filter(
      (n) => n === 1,
    ).length;
    expect(kept).toBe(HOLDS);

    // /readyz routes its probe to the slot's master: 200 again once the client has the
    // replica as the new owner.
    await waitFor(async () => (await t.call("GET", "/readyz", { token: null })).status === 200, {
      what: "/readyz to answer 200 after the failover",
    });
    const readyAfterMs = Date.now() - killedAt;

    // A purchase after the failover: the producer enqueues on the promoted replica.
    const after = await purchase({ accountId: "failover", amount: 5, expiresInSeconds: 1 });
    expect(after.status).toBe(201);
    const afterId = after.json.hold.id as string;
    expect(await promoted.direct.exists(jobKey(afterId))).toBe(1);

    const holds = await waitForExpired(db.db, [...before, afterId], 30_000);
    const expiredAfterMs = Date.now() - killedAt;
    expect(holds.map((h) => h.reason)).toEqual(holds.map(() => "expired"));
    // Each by its own expire job, run by a worker ("expired", where a hold the sweep had
    // expired first would give "resolved"), and for the holds placed before the kill the job
    // created then, which the replica kept, not a copy enqueued since.
    for (const id of [...before, afterId]) {
      const job = await stack.producer!.queues.expire.getJob(expireJobId(id));
      expect(await job?.getState()).toBe("completed");
      expect(job!.returnvalue).toEqual({ outcome: "expired" });
      if (id !== afterId) expect(job!.timestamp).toBeLessThan(killedAt);
    }
    const lateMs = Math.max(
      ...holds.map((h) => Date.parse(h.resolvedAt!) - Date.parse(h.expiresAt)),
    );
    const dueDuringFailover = holds.filter(
      (h) => Date.parse(h.expiresAt) < killedAt + failover.ms,
    ).length;
    const account = await t.call("GET", "/v1/accounts/failover", { token: SERVICE });
    expect(account.json).toMatchObject({ settled: 1000, held: 0, available: 1000 });

    // While no master serves the slot, ioredis gives a command up after 16 tries 100 ms apart
    // ("Too many Cluster redirections"); each worker (expire, sweep, webhooks) logs that and
    // asks again. So errors come at most about once a second per worker, and only until the
    // replica has taken over.
    const trouble = log.trouble();
    const summary = trouble.map((l) => `+${l.time - killedAt} ms ${l.msg}: ${l.err?.message}`);
    console.info(
      `failover ${ownerPort} → ${failover.promoted} in ${failover.ms} ms; jobs kept ` +
        `${kept}/${HOLDS}, ${dueDuringFailover} of them due before the replica took over, the ` +
        `latest run ${lateMs} ms past its deadline; /readyz 200 after ${readyAfterMs} ms; all ` +
        `expired after ${expiredAfterMs} ms; ${trouble.length} worker errors`,
    );
    expect(trouble.length, summary.join("\n")).toBeLessThanOrEqual(
      WORKERS * Math.ceil(failover.ms / 1000),
    );
    expect(trouble.filter((l) => l.time > killedAt + failover.ms + 1000)).toEqual([]);
  }, 90_000);
});
