import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClusterTarget, connectRedis, StartupError } from "../../src/process/connections.ts";
import { ADMIN, SERVICE } from "../helpers/app.ts";
import { ChildStartError } from "../helpers/child-process.ts";
import { contractFetch } from "../helpers/contract.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";
import { spawnServe } from "../helpers/processes.ts";
import {
  type ClusterStack,
  purchaseExpiringSoon,
  type RedisClusterOptions,
  recordingLogger,
  spawnServeAndWorker,
  startClusterStack,
  startRedisCluster,
  type TestRedisCluster,
  waitForExpired,
} from "../helpers/redis-cluster.ts";
import { testPrefix } from "../helpers/workers.ts";

// Recognisable, so that a test can look for it wherever it must not appear.
const PASSWORD = `pw-${randomUUID()}`;
const USER = { name: "holdfast", password: `pw-user-${randomUUID()}` };
const WRONG = `wrong-${randomUUID()}`;

/** How a failed connect ends, as the error says it; fast, as the cluster is local. */
async function connectFailure(target: ClusterTarget): Promise<string> {
  const error = await connectRedis(target, { connectTimeout: 1000 }).then(
    (redis) => {
      redis.disconnect();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StartupError);
  const { message } = error as StartupError;
  expect(message).not.toContain(PASSWORD);
  expect(message).not.toContain(USER.password);
  expect(message).not.toContain(WRONG);
  return message;
}

describe.each<{ name: string; options: RedisClusterOptions }>([
  { name: "a password", options: { password: PASSWORD } },
  { name: "TLS and an ACL user", options: { password: PASSWORD, user: USER, tls: true } },
])("on a 3-master Redis Cluster with $name", ({ options }) => {
  let cluster: TestRedisCluster;
  let db: TestDatabase;
  let stack: ClusterStack;
  const prefix = testPrefix();
  const log = recordingLogger();
  const scheme = options.tls ? "rediss" : "redis";
  const user = options.user?.name ?? "";

  beforeAll(async () => {
    [cluster, db] = await Promise.all([startRedisCluster(options), createTestDatabase()]);
    stack = await startClusterStack({
      cluster,
      db,
      seed: cluster.target(cluster.nodes[0]!.port),
      prefix,
      logger: log.logger,
    });
  });

  afterAll(() => stack?.stop());

  it("/readyz is 200, and a purchase's expire job runs through BullMQ on it", async () => {
    const t = stack.t;
    expect((await t.call("GET", "/readyz", { token: null })).status).toBe(200);
    await fundedAccount(db.db, "auth-1", 50);
    const r = await t.call("POST", "/v1/purchases", {
      token: SERVICE,
      key: randomUUID(),
      body: { accountId: "auth-1", amount: 20, expiresInSeconds: 1 },
    });
    expect(r.status).toBe(201);
    const [hold] = await waitForExpired(db.db, [r.json.hold.id]);
    expect(hold).toMatchObject({ status: "expired", reason: "expired" });
    expect(log.trouble()).toEqual([]);
  });

  it(`holdfast serve and worker with REDIS_CLUSTER_NODES=${scheme}://${user}:password@…: a purchase expires, and no log line holds the password`, async () => {
    const cliPrefix = testPrefix();
    const seeds = cluster.seedsEnv();
    expect(seeds).toMatch(new RegExp(`^${scheme}://${user}:pw-`));
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: "redis://127.0.0.1:1",
      REDIS_CLUSTER_NODES: seeds,
      HOLDFAST_QUEUE_PREFIX: cliPrefix,
      HOLDFAST_ADMIN_TOKEN: ADMIN,
      HOLDFAST_SERVICE_TOKEN: SERVICE,
      // How a process trusts a private CA: Node reads it at start.
      ...(cluster.ca ? { NODE_EXTRA_CA_CERTS: cluster.ca.file } : {}),
    };
    const { serve, worker } = await spawnServeAndWorker(db.url, env);
    try {
      expect((await contractFetch(`${serve.baseUrl}/readyz`)).status).toBe(200);
      const holdId = await purchaseExpiringSoon(serve.baseUrl, db.db, "auth-cli");
      await waitForExpired(db.db, [holdId]);
      expect(worker.output()).not.toMatch(/"level":(40|50|60)/);
    } finally {
      worker.child.kill("SIGTERM");
      expect(await serve.stop()).toBe(0);
      expect(await worker.exited).toBe(0);
      for (const output of [serve.output(), worker.output()]) {
        expect(output).not.toContain(PASSWORD);
        expect(output).not.toContain(USER.password);
      }
    }
  });

  it("a wrong password: the connect fails at start naming WRONGPASS, the password hidden", async () => {
    const message = await connectFailure({ ...cluster.target(), password: WRONG });
    expect(message).toMatch(
      new RegExp(
        `^cannot reach Redis Cluster at ${scheme}://${user}:\\*\\*\\*@127\\.0\\.0\\.1:\\d+,`,
      ),
    );
    expect(message).toMatch(/\(WRONGPASS invalid username-password pair/);
  });

  it("no password: the connect fails at start naming NOAUTH", async () => {
    const { password: _, username: __, ...without } = cluster.target();
    expect(await connectFailure(without)).toMatch(/\(NOAUTH Authentication required/);
  });

  if (options.user) {
    it("the ACL user's password without its name (as default): WRONGPASS", async () => {
      const { username: _, ...asDefault } = cluster.target();
      expect(await connectFailure(asDefault)).toMatch(/\(WRONGPASS /);
    });
  }

  if (options.tls) {
    it("without the test CA: the connect fails naming the certificate", async () => {
      expect(await connectFailure({ ...cluster.target(), tls: true })).toMatch(
        /\(self[- ]signed certificate in certificate chain\)$/,
      );
    });
  } else {
    it("holdfast serve with a wrong password exits 1 with one line naming WRONGPASS", async () => {
      const seeds = cluster.seedsEnv().replaceAll(encodeURIComponent(PASSWORD), WRONG);
      const error = await spawnServe(db.url, { REDIS_CLUSTER_NODES: seeds }).then(
        (serve) => serve.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ChildStartError);
      const { output } = error as ChildStartError;
      expect(output.trim()).toMatch(
        /^holdfast: cannot reach Redis Cluster at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+,.* \(WRONGPASS invalid username-password pair or user is disabled\.\)$/,
      );
      expect(output).not.toContain(WRONG);
    });
  }
});
