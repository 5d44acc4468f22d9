import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDb, type DbHandle } from "../../src/db/client.ts";
import { isUnavailable } from "../../src/db/errors.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";

// Found by the chaos run (test/chaos): a Postgres restart took an API process down. These pin
// the two causes, with a TCP proxy that resets connections instead of a restart of the server.

let db: TestDatabase;
let proxy: TcpProxy | undefined;
let handle: DbHandle | undefined;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

const throughProxy = (p: TcpProxy) => {
  const url = new URL(db.url);
  url.port = String(p.port);
  return createDb(url.toString(), { max: 2 });
};
const ticks = () => new Promise((r) => setTimeout(r, 100));
/** The pool answers again, and nothing was left to reject unhandled. */
async function expectPoolRecovered(h: DbHandle) {
  await ticks();
  const [row] = await h.db.execute<{ ok: number }>(sql`SELECT 1 AS ok`);
  expect(row?.ok).toBe(1);
  expect(unhandled).toEqual([]);
}
/**
 * Rethrows once the connection's close has been handled. Whether a reset reaches postgres.js
 * as one event (error and close together) or two depends on timing; this makes it the first,
 * where the ROLLBACK that follows a failed callback finds the connection already closed.
 */
const afterClose = async (error: unknown) => {
  await new Promise((r) => setTimeout(r, 50));
  throw error;
};

beforeAll(async () => {
  db = await createTestDatabase({ max: 1 });
});
afterAll(async () => {
  await db.drop();
});
beforeEach(() => {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});
afterEach(async () => {
  process.off("unhandledRejection", onUnhandled);
  // A connection reset mid-query keeps its failed query until it reconnects, so end() would
  // wait out its timeout.
  await handle?.sql.end({ timeout: 0.1 }).catch(() => {});
  await proxy?.close();
  handle = proxy = undefined;
});

describe("a lost Postgres connection", () => {
  it("mid-transaction: the transaction fails as unavailable, no ROLLBACK is written to the dead socket, the pool recovers", async () => {
    proxy = await startTcpProxy(5432);
    handle = throughProxy(proxy);
    const p = proxy;
    const failed = await handle.db
      .transaction(async (tx) => {
        await tx.execute(sql`SELECT 1`);
        setTimeout(() => p.reset(), 100);
        await tx.execute(sql`SELECT pg_sleep(2)`).catch(afterClose);
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failed).toBeDefined();
    expect(isUnavailable(failed), String(failed)).toBe(true);
    // postgres.js 3.4.9 wrote ROLLBACK to the closed connection from a setImmediate, which threw
    // "Cannot read properties of null (reading 'write')" and ended the process.
    await expectPoolRecovered(handle);
  });

  it("in a savepoint: the same, and the outer transaction fails as unavailable too", async () => {
    proxy = await startTcpProxy(5432);
    handle = throughProxy(proxy);
    const p = proxy;
    const failed = await handle.db
      .transaction((tx) =>
        tx.transaction(async (savepoint) => {
          setTimeout(() => p.reset(), 100);
          await savepoint.execute(sql`SELECT pg_sleep(2)`).catch(afterClose);
        }),
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(isUnavailable(failed), String(failed)).toBe(true);
    await expectPoolRecovered(handle);
  });

  it("a callback that saw its connection lost fails the transaction even if postgres.js never hears of the close", async () => {
    // The connection stays open here, so postgres.js's own rejection of begin never comes.
    handle = createDb(db.url, { max: 2 });
    const lost = Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" });
    const outcome = await Promise.race([
      handle.db
        .transaction(async (tx) => {
          await tx.execute(sql`SELECT 1`);
          throw lost;
        })
        .then(
          () => "committed",
          (error: unknown) => error,
        ),
      new Promise((r) => setTimeout(() => r("still pending after 2 s"), 2000)),
    ]);
    expect(outcome).toBe(lost);
    expect(isUnavailable(outcome)).toBe(true);
    expect(unhandled).toEqual([]);
  });

  it("Postgres down for 5 s: queries fail within a few seconds, and the pool is back as soon as Postgres is", async () => {
    proxy = await startTcpProxy(5432);
    handle = throughProxy(proxy);
    const h = handle;
    const p = proxy;
    await h.db.execute(sql`SELECT 1`);
    const slowest = { outage: 0, after: 0 };
    let phase: "outage" | "after" = "outage";
    let stop = false;
    p.refuse(true);
    p.reset();
    const up = setTimeout(() => {
      p.refuse(false);
      phase = "after";
    }, 5000);
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const started = Date.now();
        const during = phase;
        const error = await h.db.execute(sql`SELECT 1`).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (error !== undefined) expect(isUnavailable(error), String(error)).toBe(true);
        slowest[during] = Math.max(slowest[during], Date.now() - started);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await new Promise((r) => setTimeout(r, 8000));
    stop = true;
    await Promise.all(loops);
    clearTimeout(up);
    // postgres.js's default backoff (up to 20 s between reconnects, counted across the pool)
    // kept queries waiting through the whole outage and for seconds after it.
    expect(slowest.outage, JSON.stringify(slowest)).toBeLessThan(4000);
    expect(slowest.after, JSON.stringify(slowest)).toBeLessThan(2500);
    expect(unhandled).toEqual([]);
  });

  it("right after it was opened: the query fails as unavailable, with no unhandled rejection", async () => {
    // The first message after the startup packet is reset. With fetch_types (postgres.js's
    // default) that message is the array-types query, whose promise nobody awaits.
    proxy = await startTcpProxy(5432, {
      onClientData: (_chunk, n, reset) => {
        if (n === 2) reset();
      },
    });
    handle = throughProxy(proxy);
    const failed = await handle.db.execute(sql`SELECT 1`).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isUnavailable(failed), String(failed)).toBe(true);
    await ticks();
    expect(unhandled).toEqual([]);
  });
});
