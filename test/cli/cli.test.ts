import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_URL, databaseUrl, REDIS_URL, testDatabaseName } from "../helpers/urls.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TOKENS = {
  HOLDFAST_ADMIN_TOKEN: "cli-test-admin-token-0123",
  HOLDFAST_SERVICE_TOKEN: "cli-test-service-token-0123",
};

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `holdfast <args>` in a clean environment (nothing inherited but PATH and HOME). */
async function holdfast(args: string[], env: Record<string, string>): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/holdfast.js", ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        LOG_LEVEL: "warn",
        ...env,
      },
      timeout: 25_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string; killed?: boolean };
    if (e.killed || typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

// The shared naming scheme lets a later run drop this database if this run dies.
const name = `${testDatabaseName("holdfast_t")}_cli`;
const url = databaseUrl(name);
const env = { DATABASE_URL: url, REDIS_URL, ...TOKENS };
let sql: postgres.Sql | undefined;

afterAll(async () => {
  await sql?.end();
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
});

async function state() {
  const accounts = await sql!<{ id: string; settled: number; entries: number }[]>`
    SELECT a.id, a.settled::int AS settled,
           (SELECT count(*) FROM entries e WHERE e.account_id = a.id)::int AS entries
      FROM accounts a WHERE a.kind = 'user' ORDER BY a.id`;
  const [totals] = await sql!`
    SELECT (SELECT count(*) FROM ledger_transactions)::int AS transactions,
           (SELECT count(*) FROM entries)::int AS entries`;
  return { accounts, totals };
}

describe("holdfast against a database that does not exist yet", () => {
  it("migrate creates the database, applies the migrations and exits 0", async () => {
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      const before = await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`;
      expect(before).toHaveLength(0);
    } finally {
      await admin.end();
    }

    const r = await holdfast(["migrate"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

    sql = postgres(url, { max: 1, onnotice: () => {} });
    const system = await sql<{ id: string }[]>`
      SELECT DISTINCT id FROM accounts WHERE kind = 'system' ORDER BY id`;
    expect(system.map((a) => a.id)).toEqual([
      "@adjustments",
      "@issuance",
      "@promotions",
      "@revenue",
    ]);
  });

  it("migrate a second time is fine and applies nothing new", async () => {
    const count = async () =>
      (await sql!`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`)[0]!.n as number;
    const before = await count();
    expect(before).toBeGreaterThanOrEqual(2);
    const r = await holdfast(["migrate"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(await count()).toBe(before);
  });

  it("seed creates alice (50) and bob (500)", async () => {
    const r = await holdfast(["seed"], env);
    expect(r.code).toBe(0);
    const { accounts } = await state();
    expect(accounts).toEqual([
      { id: "alice", settled: 50, entries: 1 },
      { id: "bob", settled: 500, entries: 1 },
    ]);
  });

  it("seed again changes nothing", async () => {
    const before = await state();
    const r = await holdfast(["seed"], env);
    expect(r.code).toBe(0);
    expect(await state()).toEqual(before);
  });

  it("verify exits 0 and says all invariants hold", async () => {
    const r = await holdfast(["verify"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("all invariants hold");
    expect(r.stdout).not.toContain("FAIL");
  });

  it("verify exits 1 and prints FAIL after a balance is tampered", async () => {
    await sql!`UPDATE accounts SET settled = settled + 1 WHERE id = 'bob'`;
    const r = await holdfast(["verify"], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /FAIL \[2\] each account's stored settled balance equals the sum of its entries: 1 violation/,
    );
    expect(r.stdout).toContain("INVARIANTS VIOLATED");
    expect(r.stdout).not.toContain("all invariants hold");
  });
});

/** One line on stderr, no stack trace. */
function expectOneLine(r: Outcome) {
  expect(r.code).toBe(1);
  expect(lines(r.stderr)).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines(r.stderr)[0]!;
}

describe("holdfast refuses to start, in one line", () => {
  it("verify against an unreachable Postgres names the URL", async () => {
    const r = await holdfast(["verify"], { ...env, DATABASE_URL: "postgres://127.0.0.1:1/x" });
    expect(expectOneLine(r)).toBe(
      "holdfast: cannot reach Postgres at postgres://127.0.0.1:1/x (ECONNREFUSED)",
    );
  });

  it("migrate against an unreachable Postgres names the server it tried", async () => {
    const r = await holdfast(["migrate"], { ...env, DATABASE_URL: "postgres://127.0.0.1:1/x" });
    expect(expectOneLine(r)).toMatch(
      /^holdfast: cannot reach Postgres at postgres:\/\/127\.0\.0\.1:1\//,
    );
  });

  it("the password in an unreachable URL is not printed", async () => {
    const r = await holdfast(["verify"], {
      ...env,
      DATABASE_URL: "postgres://holdfast:s3cret-pw@127.0.0.1:1/x",
    });
    const line = expectOneLine(r);
    expect(line).toContain("127.0.0.1:1/x");
    expect(line).not.toContain("s3cret-pw");
  });

  it.each(["seed", "serve", "worker"])(
    "%s against an unreachable Postgres names the URL",
    async (command) => {
      const r = await holdfast([command], { ...env, DATABASE_URL: "postgres://127.0.0.1:1/x" });
      expect(expectOneLine(r)).toBe(
        "holdfast: cannot reach Postgres at postgres://127.0.0.1:1/x (ECONNREFUSED)",
      );
    },
  );

  it.each(["serve", "worker"])(
    "%s against an unreachable Redis Cluster names the nodes it tried",
    async (command) => {
      const r = await holdfast([command], {
        ...env,
        REDIS_CLUSTER_NODES: "127.0.0.1:1,127.0.0.1:2",
      });
      expect(expectOneLine(r)).toBe(
        "holdfast: cannot reach Redis Cluster at 127.0.0.1:1,127.0.0.1:2 (connect ECONNREFUSED 127.0.0.1:1)",
      );
    },
  );

  it("REDIS_CLUSTER_NODES with a queue prefix that has no hash tag: names the prefix", async () => {
    const r = await holdfast(["worker"], {
      ...env,
      REDIS_CLUSTER_NODES: "127.0.0.1:7000",
      HOLDFAST_QUEUE_PREFIX: "holdfast",
    });
    expect(expectOneLine(r)).toMatch(
      /^holdfast: invalid environment variable HOLDFAST_QUEUE_PREFIX: with REDIS_CLUSTER_NODES/,
    );
  });

  it.each([
    ["PORT", "abc", "serve"],
    ["REDIS_URL", "not-a-url", "serve"],
    ["REDIS_CLUSTER_NODES", "127.0.0.1:99999", "worker"],
    ["DATABASE_URL", "not a url", "verify"],
    ["HOLDFAST_SWEEP_INTERVAL_MS", "5", "verify"],
    ["HOLDFAST_FULFIL_CONCURRENCY", "0", "worker"],
    ["LOG_LEVEL", "loud", "migrate"],
    ["HOLDFAST_ADMIN_TOKEN", "short", "serve"],
  ])("%s=%s: %s exits 1 naming the variable", async (variable, value, command) => {
    const r = await holdfast([command], { ...env, [variable]: value });
    expect(expectOneLine(r)).toMatch(
      new RegExp(`^holdfast: invalid environment variable ${variable}: `),
    );
  });

  it("NODE_ENV=production without tokens: serve exits 1 naming HOLDFAST_ADMIN_TOKEN", async () => {
    const r = await holdfast(["serve"], { DATABASE_URL: url, REDIS_URL, NODE_ENV: "production" });
    expect(expectOneLine(r)).toBe(
      "holdfast: invalid environment variable HOLDFAST_ADMIN_TOKEN: required in production",
    );
  });

  it("NODE_ENV=production with only the admin token: serve names HOLDFAST_SERVICE_TOKEN", async () => {
    const r = await holdfast(["serve"], {
      DATABASE_URL: url,
      REDIS_URL,
      NODE_ENV: "production",
      HOLDFAST_ADMIN_TOKEN: TOKENS.HOLDFAST_ADMIN_TOKEN,
    });
    expect(expectOneLine(r)).toBe(
      "holdfast: invalid environment variable HOLDFAST_SERVICE_TOKEN: required in production",
    );
  });
});
