import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type DbHandle } from "../../src/db/client.ts";
import { isUnavailable, pgErrorCode } from "../../src/db/errors.ts";
import { getAccount } from "../../src/ledger/account.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { listEntries } from "../../src/ledger/list-entries.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";
import { ADMIN_URL } from "../helpers/urls.ts";

// postgres.js 3.4.9 (porsager/postgres#1119, #1181): a query that failed after some rows had
// streamed left the connection's row counter where it stopped, so the next query on that
// connection resolved with a sparse array (holes at the front, length too long); and a backend
// terminated mid-stream left its FATAL error behind, to reject the first query after the
// reconnect. patches/postgres+3.4.9.patch fixes both; these tests fail without it.

let db: TestDatabase;
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
  await admin.end();
});

/** Rows wide enough (9 kB) that Postgres flushes each one before producing the next. */
const STREAM_THEN_SLEEP = `
  SELECT i, repeat('x', 9000) AS pad, pg_sleep(CASE WHEN i = 4 THEN 30 ELSE 0 END) AS s
    FROM generate_series(1, 10) i`;

/** Resolves with the pid of the backend of `application` once it sleeps in pg_sleep. */
async function sleepingBackend(application: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const rows = await admin<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity
       WHERE application_name = ${application} AND wait_event = 'PgSleep'`;
    if (rows[0]) return rows[0].pid;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no backend of ${application} reached pg_sleep`);
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected the query to fail");
    },
    (error: unknown) => error,
  );

/** Asserts a result is a dense array of exactly `n` rows. */
function expectWhole(rows: ArrayLike<unknown>, n: number) {
  expect(rows.length).toBe(n);
  for (let i = 0; i < n; i++) expect(rows[i], `row ${i}`).toBeDefined();
}

describe("postgres.js after a query fails mid-stream", () => {
  const raw = (application: string) =>
    postgres(db.url, {
      max: 1,
      onnotice: () => {},
      connection: { application_name: application },
    });

  it("an error after some rows (division by zero): the next query's result is whole", async () => {
    const s = raw("drv-div0");
    try {
      await failure(s`SELECT i, 1/(4-i) FROM generate_series(1,10) i`);
      const r = await s`SELECT 'alice' AS id`;
      expectWhole(r, 1);
      expect(r[0]?.id).toBe("alice");
      const u = await s.unsafe("SELECT 'bob' AS id");
      expectWhole(u, 1);
    } finally {
      await s.end();
    }
  });

  it("a cancel after some rows: the next query's result is whole", async () => {
    const s = raw("drv-cancel");
    try {
      const streaming = failure(s.unsafe(STREAM_THEN_SLEEP));
      await admin`SELECT pg_cancel_backend(${await sleepingBackend("drv-cancel")})`;
      expect(pgErrorCode(await streaming)).toBe("57014");
      const r = await s`SELECT g FROM generate_series(1, 3) g`;
      expectWhole(r, 3);
      expect(r.map((x) => x.g)).toEqual([1, 2, 3]);
    } finally {
      await s.end();
    }
  });

  it("a statement timeout after some rows: the next query's result is whole", async () => {
    const s = raw("drv-timeout");
    try {
      await s`SET statement_timeout = 300`;
      expect(pgErrorCode(await failure(s.unsafe(STREAM_THEN_SLEEP)))).toBe("57014");
      const r = await s`SELECT 'alice' AS id`;
      expectWhole(r, 1);
    } finally {
      await s.end();
    }
  });

  it("a backend terminated mid-stream: the stream fails with 57P01, the first query after the reconnect succeeds", async () => {
    const s = raw("drv-terminate");
    try {
      const streaming = failure(s.unsafe(STREAM_THEN_SLEEP));
      await admin`SELECT pg_terminate_backend(${await sleepingBackend("drv-terminate")})`;
      expect(pgErrorCode(await streaming)).toBe("57P01");
      const r = await s`SELECT 'alice' AS id`;
      expectWhole(r, 1);
      expect(r[0]?.id).toBe("alice");
    } finally {
      await s.end();
    }
  });
});

describe("holdfast's query layer after a query fails mid-stream", () => {
  let handle: DbHandle;
  beforeAll(async () => {
    await fundedAccount(db.db, "alice", 10);
    for (let i = 0; i < 4; i++) await creditAccount(db.db, { accountId: "alice", amount: 1 });
    handle = createDb(db.url, { max: 1, application: "drv-layer" });
  });
  afterAll(async () => {
    await handle.close();
  });

  it("an existing account is found and its entry page is whole after a cancelled read", async () => {
    const streaming = failure(handle.db.execute(sql.raw(STREAM_THEN_SLEEP)));
    await admin`SELECT pg_cancel_backend(${await sleepingBackend("drv-layer")})`;
    expect(isUnavailable(await streaming)).toBe(true);

    const account = await getAccount(handle.db, "alice");
    expect(account.settled).toBe(14);
    const page = await listEntries(handle.db, { accountId: "alice", limit: 200 });
    expectWhole(page.data, 5);
  });

  it("a terminated backend's error does not fail the next request", async () => {
    const streaming = failure(handle.db.execute(sql.raw(STREAM_THEN_SLEEP)));
    await admin`SELECT pg_terminate_backend(${await sleepingBackend("drv-layer")})`;
    expect(isUnavailable(await streaming)).toBe(true);
    const account = await getAccount(handle.db, "alice");
    expect(account.available).toBe(14);
  });
});
