import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "../../src/db/client.ts";
import { shardsOf } from "../../src/db/shards.ts";
import { FROM_THE_START } from "../../src/events/feed-cursor.ts";
import { placeEvents } from "../../src/events/feeds.ts";
import { listEvents } from "../../src/events/list-events.ts";
import { bucketOf } from "../../src/ledger/ids.ts";
import { createLogger } from "../../src/logger.ts";
import type { RedisTarget } from "../../src/process/connections.ts";
import { getHold } from "../../src/reservations/hold.ts";
import { expireOverdueHolds } from "../../src/reservations/release-hold.ts";
import { dispatchEvents } from "../../src/webhooks/dispatch.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { batchedScheduler } from "../../src/workers/schedule-hold.ts";
import { type RunningWorkers, startWorkers } from "../../src/workers/worker.ts";
import { purgeIdempotencyKeys } from "../../src/writes/purge-keys.ts";
import { ADMIN, createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { distributedCounters } from "../helpers/citus.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent } from "../helpers/ledger.ts";
import { startRedisCluster, type TestRedisCluster } from "../helpers/redis-cluster.ts";
import { testPrefix, waitFor, workerEnv } from "../helpers/workers.ts";

// holdfast on the local Citus cluster (a coordinator and two workers, this file's database
// distributed by `holdfast migrate`) and a real 3-master Redis Cluster: two API instances and
// the workers, as production would run them.
let cluster: TestRedisCluster;
let db: TestDatabase;
let apis: TestApp[] = [];
let producer: Producer | undefined;
let workers: RunningWorkers | undefined;
const prefix = testPrefix();

beforeAll(async () => {
  [cluster, db] = await Promise.all([startRedisCluster(), createTestDatabase()]);
  const redis: RedisTarget = { clusterNodes: cluster.seeds() };
  const connected = await connectProducer(redis, prefix);
  producer = connected;
  const holdPlaced = batchedScheduler(producer.queues, { fulfilment: false });
  const env = { HOLDFAST_QUEUE_PREFIX: prefix };
  apis = [
    await createTestApp({ db, redis, env, holdPlaced }),
    await createTestApp({ db, redis, env, holdPlaced }),
  ];
  workers = await startWorkers({
    db: db.db,
    env: workerEnv({ HOLDFAST_QUEUE_PREFIX: prefix, HOLDFAST_SWEEP_INTERVAL_MS: 600_000 }),
    logger: createLogger("silent"),
    redis,
  });
  // The sweep runs once at start, then every 10 minutes: out of the counters' way once done (it
  // reads every shard).
  await waitFor(
    async () => ((await connected.queues.sweep.getJobCounts("completed")).completed ?? 0) > 0,
    {
      what: "the first sweep",
      timeoutMs: 60_000,
    },
  );
});

afterAll(async () => {
  try {
    await workers?.close();
    await producer?.close();
    for (const api of apis) await api.close();
    if (db) await db.drop();
  } finally {
    await cluster?.stop();
  }
});

/** Round-robin over the two API instances, as a load balancer would. */
let next = 0;
const call: TestApp["call"] = (...args) => apis[next++ % apis.length]!.call(...args);

describe("on Citus with a Redis Cluster", () => {
  it("holdfast migrate distributed the account tables by bucket, colocated, and promotions everywhere", async () => {
    const tables = await db.sql<{ name: string; method: string; colocation: number }[]>`
      SELECT logicalrelid::regclass::text AS name, partmethod AS method, colocationid AS colocation
        FROM pg_dist_partition ORDER BY 1`;
    const distributed = tables.filter((t) => t.method === "h");
    expect(distributed.map((t) => t.name).sort()).toEqual([
      "accounts",
      "entries",
      "event_feeds",
      "events",
      "holds",
      "idempotency_keys",
      "ledger_transactions",
      "promotion_allotments",
      "redemptions",
      "refunds",
      "webhook_attempts",
      "webhook_cursors",
      "webhook_deliveries",
    ]);
    expect(new Set(distributed.map((t) => t.colocation)).size).toBe(1);
    expect(tables.find((t) => t.name === "promotions")?.method).toBe("n");
    expect(tables.find((t) => t.name === "webhook_endpoints")?.method).toBe("n");
  });

  it("a mixed workload from two API instances and the workers: no two-phase commit, no multi-shard query", async () => {
    const ids = Array.from({ length: 24 }, (_, i) => `scale-${i}`);
    // The accounts land on both workers.
    const shards = await db.sql<{ shard: number }[]>`
      SELECT DISTINCT get_shard_id_for_distribution_column('accounts', x.b)::int8 AS shard
        FROM jsonb_array_elements_text(${JSON.stringify(ids.map(bucketOf))}::jsonb) AS b(t),
             LATERAL (SELECT t::int AS b) x`;
    expect(shards.length).toBeGreaterThan(4);

    // A promotion is created on every node (the reference table, and a row per shard of its
    // allotments); its redemptions are then single-shard.
    for (const body of [{ code: "SCALE-OPEN" }, { code: "SCALE-CAP", maxRedemptions: 1000 }]) {
      const made = await call("POST", "/v1/promotions", { token: ADMIN, body });
      expect(made.status).toBe(201);
    }
    const before = await distributedCounters(db.sql);
    const created = await Promise.all(
      ids.map((id) => call("POST", "/v1/accounts", { token: SERVICE, body: { id } })),
    );
    expect(created.map((r) => r.status)).toEqual(ids.map(() => 201));
    const credited = await Promise.all(
      ids.map((id) =>
        call("POST", `/v1/accounts/${id}/credits`, {
          token: ADMIN,
          key: randomUUID(),
          body: { amount: 100 },
        }),
      ),
    );
    expect(credited.map((r) => r.status)).toEqual(ids.map(() => 201));

    // Four purchases per account, all in flight at once; the last of each expires in a second.
    const purchases = await Promise.all(
      ids.flatMap((accountId) =>
        [0, 1, 2, 3].map((n) =>
          call("POST", "/v1/purchases", {
            token: SERVICE,
            key: randomUUID(),
            body: { accountId, amount: 10 + n, ...(n === 3 ? { expiresInSeconds: 1 } : {}) },
          }),
        ),
      ),
    );
    expect(purchases.map((r) => r.status)).toEqual(purchases.map(() => 201));
    const holds = purchases.map((r) => r.json.hold as { id: string; amount: number });
    const byKind = (n: number) => holds.filter((_, i) => i % 4 === n);

    const settled = await Promise.all(
      byKind(0).map((h) =>
        call("POST", `/v1/holds/${h.id}/settle`, { token: SERVICE, body: { amount: 5 } }),
      ),
    );
    const released = await Promise.all(
      byKind(1).map((h) =>
        call("POST", `/v1/holds/${h.id}/release`, {
          token: SERVICE,
          body: { reason: "cancelled" },
        }),
      ),
    );
    expect([...settled, ...released].map((r) => r.status)).toEqual(
      [...settled, ...released].map(() => 200),
    );
    // Refunds of the settled purchases, two racing per hold for its 5 coins, and adjustments.
    const refunds = await Promise.all(
      byKind(0).flatMap((h) =>
        [3, 4].map((amount) =>
          call("POST", `/v1/holds/${h.id}/refunds`, {
            token: SERVICE,
            key: randomUUID(),
            body: { amount },
          }),
        ),
      ),
    );
    const adjusted = await Promise.all(
      ids.map((id) =>
        call("POST", `/v1/accounts/${id}/adjustments`, {
          token: ADMIN,
          key: randomUUID(),
          body: { amount: -1, reason: "correction" },
        }),
      ),
    );
    for (let i = 0; i < ids.length; i++) {
      const pair = refunds.slice(2 * i, 2 * i + 2).map((r) => r.status);
      expect(pair.sort()).toEqual([201, 422]);
    }
    expect(adjusted.map((r) => r.status)).toEqual(ids.map(() => 201));
    const redeemed = await Promise.all(
      ids.flatMap((accountId) =>
        ["SCALE-OPEN", "SCALE-CAP"].map((code) =>
          call("POST", `/v1/promotions/${code}/redemptions`, {
            token: SERVICE,
            key: randomUUID(),
            body: { accountId },
          }),
        ),
      ),
    );
    expect(redeemed.map((r) => r.status)).toEqual(redeemed.map(() => 201));
    // The expire worker ends the holds of the fourth purchases.
    await waitFor(
      async () => {
        const now = await Promise.all(byKind(3).map((h) => getHold(db.db, h.id)));
        return now.every((h) => h.status === "expired");
      },
      { what: "the short holds to expire", timeoutMs: 30_000 },
    );
    const after = await distributedCounters(db.sql);

    expect(after.two_phase - before.two_phase).toBe(0);
    expect(after.multi - before.multi).toBe(0);
    // 24 × (create, credit) + 96 purchases + 24 settles + 24 releases + 48 refunds
    // + 24 adjustments + 48 redemptions + 24 expiries, at least.
    expect(after.single - before.single).toBeGreaterThan(300);

    const holdsNow = await Promise.all(byKind(0).map((h) => getHold(db.db, h.id)));
    const refunded = holdsNow.map((h) => h.refundedAmount);
    expect(refunded.every((n) => n === 3 || n === 4)).toBe(true);
    const balances = await Promise.all(
      ids.map((id) => call("GET", `/v1/accounts/${id}`, { token: SERVICE })),
    );
    for (const [i, r] of balances.entries()) {
      // 100 − 5 settled + the refund − 1 adjusted, doubled twice; the second purchase
      // released, the fourth expired; the third (12) held.
      const settled = 4 * (94 + refunded[i]!);
      expect(r.json).toMatchObject({ settled, held: 12, available: settled - 12 });
    }
    const revenue = await call("GET", "/v1/accounts/@revenue", { token: ADMIN });
    expect(revenue.json.settled).toBe(24 * 5 - refunded.reduce((a, b) => a + b, 0));
    const adjustments = await call("GET", "/v1/accounts/@adjustments", { token: ADMIN });
    expect(adjustments.json.settled).toBe(24);
    for (const code of ["SCALE-OPEN", "SCALE-CAP"]) {
      const promotion = await call("GET", `/v1/promotions/${code}`, { token: ADMIN });
      expect(promotion.json.redemptions).toBe(24);
    }
    await expectLedgerConsistent(db.db);
  });

  it("a cap of 5 split over every shard, raced by 24 accounts on many shards: exactly five", async () => {
    const made = await call("POST", "/v1/promotions", {
      token: ADMIN,
      body: { code: "SCALE-FIVE", maxRedemptions: 5 },
    });
    expect(made.status).toBe(201);
    const shards = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM promotion_allotments WHERE promotion_code = 'SCALE-FIVE'`;
    expect(shards[0]!.n).toBeGreaterThan(5);
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call("POST", "/v1/promotions/SCALE-FIVE/redemptions", {
          token: SERVICE,
          key: randomUUID(),
          body: { accountId: `scale-${i}` },
        }),
      ),
    );
    const statuses = outcomes.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(5);
    expect(statuses.filter((s) => s === 422)).toHaveLength(19);
    const promotion = await call("GET", "/v1/promotions/SCALE-FIVE", { token: ADMIN });
    expect(promotion.json.redemptions).toBe(5);
    await expectLedgerConsistent(db.db);
  });

  it("the events feed: every event of the workload once, each account's in sequence order", async () => {
    const seen: { id: string; accountId: string; sequence: number }[] = [];
    let after = "";
    for (;;) {
      const r = await call("GET", `/v1/events?limit=500${after}`, { token: SERVICE });
      expect(r.status).toBe(200);
      if (r.json.data.length === 0) break;
      seen.push(...r.json.data);
      after = `&after=${r.json.nextCursor}`;
    }
    const [written] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    expect(seen).toHaveLength(written!.n);
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
    for (let i = 0; i < 24; i++) {
      const mine = seen.filter((e) => e.accountId === `scale-${i}`).map((e) => e.sequence);
      expect(mine).toEqual(mine.map((_, k) => k + 1));
      expect(mine.length).toBeGreaterThan(10);
    }
    await expectLedgerConsistent(db.db);
  });

  it("run again and again on one connection, the sweep and the feed write one shard at a time", async () => {
    const handle = createDb(db.url, { max: 1 });
    try {
      const { groups } = await shardsOf(handle.db);
      await placeEvents(handle.db);
      const before = await distributedCounters(db.sql);
      // A prepared statement runs on a generic plan from its sixth run.
      for (let round = 0; round < 8; round++) {
        for (const buckets of groups.slice(0, 4)) {
          await expireOverdueHolds(handle.db, 100, buckets);
          await purgeIdempotencyKeys(handle.db, buckets);
        }
        await placeEvents(handle.db);
        await listEvents(handle.db, { after: FROM_THE_START, limit: 10 });
      }
      const after = await distributedCounters(db.sql);
      expect(after.two_phase - before.two_phase).toBe(0);
      // The one read of every shard a placing call makes, to find the feeds it has work in
      // (twice a round: listEvents places first).
      expect(after.multi - before.multi).toBe(16);
    } finally {
      await handle.close();
    }
  });

  it("placing events and following the feed, then dispatching them to an endpoint: no two-phase commit", async () => {
    const follow = async () => {
      const seen: { accountId: string }[] = [];
      let after = "";
      for (;;) {
        const r = await call("GET", `/v1/events?limit=500${after}`, { token: SERVICE });
        expect(r.status).toBe(200);
        if (r.json.data.length === 0) return { seen, cursor: r.json.nextCursor as string };
        seen.push(...r.json.data);
        after = `&after=${r.json.nextCursor}`;
      }
    };
    const credit = () =>
      Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          call("POST", `/v1/accounts/scale-${i}/credits`, {
            token: ADMIN,
            key: randomUUID(),
            body: { amount: 1 },
          }),
        ),
      );
    const start = await follow();
    let before = await distributedCounters(db.sql);
    await credit();
    const r = await call("GET", `/v1/events?limit=500&after=${start.cursor}`, { token: SERVICE });
    expect(r.json.data).toHaveLength(24);
    let after = await distributedCounters(db.sql);
    // Each feed is placed and read on its own shard, after one read of every shard.
    expect(after.two_phase - before.two_phase).toBe(0);
    expect(after.multi - before.multi).toBe(1);

    const made = await call("POST", "/v1/webhook-endpoints", {
      token: ADMIN,
      body: { url: "http://127.0.0.1:9/unreachable", types: ["account.credited"] },
    });
    expect(made.status).toBe(201);
    before = await distributedCounters(db.sql);
    await credit();
    await dispatchEvents(db.db);
    after = await distributedCounters(db.sql);
    // Each endpoint's deliveries of a feed are made, and its cursor there moved, on one shard
    // (the pending lanes are then read from every shard).
    expect(after.two_phase - before.two_phase).toBe(0);
    const [deliveries] = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = ${made.json.id}`;
    expect(deliveries!.n).toBe(24);
    expect(
      (await call("DELETE", `/v1/webhook-endpoints/${made.json.id}`, { token: ADMIN })).status,
    ).toBe(204);
  });

  it("the counters see a two-phase commit: one transaction that updates accounts of two workers", async () => {
    const byNode = new Map<number, { id: string; bucket: number }>();
    for (let i = 0; i < 24; i++) {
      const account = { id: `scale-${i}`, bucket: bucketOf(`scale-${i}`) };
      const [placement] = await db.sql<{ port: number }[]>`
        SELECT nodeport AS port FROM pg_dist_shard_placement
         WHERE shardid = get_shard_id_for_distribution_column('accounts', ${account.bucket}::int)`;
      byNode.set(placement!.port, account);
    }
    const [a, b] = [...byNode.values()];
    expect(b).toBeDefined();
    const before = await distributedCounters(db.sql);
    await db.sql.begin(async (sql) => {
      await sql`UPDATE accounts SET metadata = metadata WHERE bucket = ${a!.bucket} AND id = ${a!.id}`;
      await sql`UPDATE accounts SET metadata = metadata WHERE bucket = ${b!.bucket} AND id = ${b!.id}`;
    });
    const after = await distributedCounters(db.sql);
    expect(after.two_phase - before.two_phase).toBe(2);
  });
});
