import { describe, expect, it } from "vitest";
import { EnvError, hasHashTag, parseEnv } from "../src/env.ts";
import { describeRedis, redisTarget } from "../src/process/connections.ts";

const TOKENS = {
  HOLDFAST_ADMIN_TOKEN: "env-test-admin-token-0123",
  HOLDFAST_SERVICE_TOKEN: "env-test-service-token-0123",
};

const parse = (vars: Record<string, string>) => parseEnv({ ...TOKENS, ...vars }).env;

describe("REDIS_CLUSTER_NODES", () => {
  it("is a list of host:port seeds; spaces around entries and IPv6 in brackets are allowed", () => {
    const env = parse({ REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-b.internal:7001,[::1]:7002" });
    const nodes = [
      { host: "10.0.0.1", port: 7000 },
      { host: "redis-b.internal", port: 7001 },
      { host: "::1", port: 7002 },
    ];
    expect(env.REDIS_CLUSTER_NODES).toStrictEqual({ nodes, tls: false });
    expect(redisTarget(env)).toStrictEqual({ clusterNodes: nodes, tls: false });
  });

  it("entries may be URLs as in REDIS_URL: credentials and TLS go to every node", () => {
    const env = parse({
      REDIS_CLUSTER_NODES:
        "rediss://holdfast:s%40cret:x@10.0.0.1:7000, rediss://holdfast:s%40cret:x@[::1]:7001/0",
    });
    expect(redisTarget(env)).toStrictEqual({
      clusterNodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "::1", port: 7001 },
      ],
      tls: true,
      username: "holdfast",
      password: "s@cret:x",
    });
    expect(describeRedis(redisTarget(env))).toBe(
      "Redis Cluster at rediss://holdfast:***@10.0.0.1:7000,rediss://holdfast:***@[::1]:7001",
    );
  });

  it("a password alone (requirepass), plain redis://, and a URL without a port (6379)", () => {
    expect(
      redisTarget(parse({ REDIS_CLUSTER_NODES: "redis://:pw@a:7000,redis://:pw@b" })),
    ).toStrictEqual({
      clusterNodes: [
        { host: "a", port: 7000 },
        { host: "b", port: 6379 },
      ],
      tls: false,
      password: "pw",
    });
    const plain = parse({ REDIS_CLUSTER_NODES: "redis://a:7000,b:7001" });
    expect(redisTarget(plain)).toStrictEqual({
      clusterNodes: [
        { host: "a", port: 7000 },
        { host: "b", port: 7001 },
      ],
      tls: false,
    });
    expect(describeRedis(redisTarget(plain))).toBe("Redis Cluster at a:7000,b:7001");
    const tlsOnly = parse({ REDIS_CLUSTER_NODES: "rediss://a:7000" });
    expect(describeRedis(redisTarget(tlsOnly))).toBe("Redis Cluster at rediss://a:7000");
  });

  it.each([
    ["a scheme", "rediss://:pw@a:7000,redis://:pw@b:7000", "scheme"],
    ["a password", "redis://:pw@a:7000,redis://:other@b:7000", "password"],
    ["a missing password", "redis://:pw@a:7000,b:7000", "password"],
    ["a user", "redis://u:pw@a:7000,redis://v:pw@b:7000", "user"],
  ])("entries that differ in %s are refused, without quoting a password", (_, value, what) => {
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).toThrow(
      new RegExp(
        `^invalid environment variable REDIS_CLUSTER_NODES: every entry needs the same scheme, user and password; .* in its ${what}$`,
      ),
    );
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).not.toThrow(/pw|other/);
  });

  it.each([
    ["another scheme", "http://a:7000"],
    ["a URL without a host", "redis://:7000"],
    ["a URL with port 0", "redis://:pw@a:0"],
    ["a bad percent-encoding", "redis://:pw%zz@a:7000"],
  ])("%s is refused, naming the variable and not the password", (_, value) => {
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).toThrow(
      /^invalid environment variable REDIS_CLUSTER_NODES: expected host:port or redis\[s\]:\/\//,
    );
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).not.toThrow(/pw/);
  });

  it.each(["redis://:pw@a:7000/1", "redis://:pw@a:7000?family=6"])(
    "%s (a database number or ?options) is refused: a cluster has neither",
    (value) => {
      expect(() => parse({ REDIS_CLUSTER_NODES: value })).toThrow(
        /^invalid environment variable REDIS_CLUSTER_NODES: a cluster node URL has no database number or \?options; got "redis:\/\/\*\*\*@a:7000/,
      );
    },
  );

  it("unset or empty: REDIS_URL is the one Redis node", () => {
    for (const vars of [{}, { REDIS_CLUSTER_NODES: "" }] as Record<string, string>[]) {
      const env = parse({ ...vars, REDIS_URL: "redis://10.0.0.9:6380" });
      expect(env.REDIS_CLUSTER_NODES).toBeUndefined();
      expect(redisTarget(env)).toBe("redis://10.0.0.9:6380");
    }
  });

  it.each([
    ["a port out of range", "127.0.0.1:7000,127.0.0.1:70000"],
    ["port 0", "127.0.0.1:0"],
    ["no port", "127.0.0.1"],
    ["a port that is not a number", "127.0.0.1:redis"],
    ["no host", ":7000"],
    ["an empty entry", "127.0.0.1:7000,,127.0.0.1:7001"],
    ["a path instead of a port", "127.0.0.1/7000"],
  ])("%s is refused, naming the variable", (_, value) => {
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).toThrow(EnvError);
    expect(() => parse({ REDIS_CLUSTER_NODES: value })).toThrow(
      /^invalid environment variable REDIS_CLUSTER_NODES: expected host:port/,
    );
  });

  it.each(["holdfast", "{}holdfast", "holdfast}{", "{holdfast"])(
    "with cluster nodes, the queue prefix %s (no hash tag) is refused, naming HOLDFAST_QUEUE_PREFIX",
    (prefix) => {
      expect(() =>
        parse({ REDIS_CLUSTER_NODES: "127.0.0.1:7000", HOLDFAST_QUEUE_PREFIX: prefix }),
      ).toThrow(/^invalid environment variable HOLDFAST_QUEUE_PREFIX: .*\{hash tag\}/);
    },
  );

  it("with cluster nodes, the default {holdfast} and other tagged prefixes are accepted", () => {
    expect(parse({ REDIS_CLUSTER_NODES: "127.0.0.1:7000" }).HOLDFAST_QUEUE_PREFIX).toBe(
      "{holdfast}",
    );
    for (const prefix of ["{hf}", "app:{hf}", "x{a}y{b}"])
      expect(
        parse({ REDIS_CLUSTER_NODES: "127.0.0.1:7000", HOLDFAST_QUEUE_PREFIX: prefix })
          .HOLDFAST_QUEUE_PREFIX,
      ).toBe(prefix);
  });

  it("on one node, a prefix without a hash tag is still accepted", () => {
    expect(parse({ HOLDFAST_QUEUE_PREFIX: "holdfast" }).HOLDFAST_QUEUE_PREFIX).toBe("holdfast");
  });

  it("hasHashTag follows Redis: the first { and the next }, with something between", () => {
    expect(hasHashTag("{a}")).toBe(true);
    expect(hasHashTag("}{a}")).toBe(true);
    expect(hasHashTag("{}{a}")).toBe(false);
    expect(hasHashTag("{")).toBe(false);
  });
});

describe("HOLDFAST_READY_STRICT and HOLDFAST_OPS_TOKEN", () => {
  it("READY_STRICT is 0 or 1, off by default", () => {
    expect(parse({}).HOLDFAST_READY_STRICT).toBe(false);
    expect(parse({ HOLDFAST_READY_STRICT: "1" }).HOLDFAST_READY_STRICT).toBe(true);
    expect(() => parse({ HOLDFAST_READY_STRICT: "yes" })).toThrow(
      /invalid environment variable HOLDFAST_READY_STRICT/,
    );
  });

  it("the ops token is optional, at least 16 characters, and unlike the admin and service tokens", () => {
    expect(parse({}).HOLDFAST_OPS_TOKEN).toBeUndefined();
    expect(parse({ HOLDFAST_OPS_TOKEN: "ops-token-0123456789" }).HOLDFAST_OPS_TOKEN).toBe(
      "ops-token-0123456789",
    );
    expect(() => parse({ HOLDFAST_OPS_TOKEN: "short" })).toThrow(
      /invalid environment variable HOLDFAST_OPS_TOKEN/,
    );
    for (const token of Object.values(TOKENS))
      expect(() => parse({ HOLDFAST_OPS_TOKEN: token })).toThrow(
        /HOLDFAST_OPS_TOKEN: must differ from the admin and service tokens/,
      );
  });
});
