import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isConnectionLost, isUnavailable } from "../../src/db/errors.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

// Found by the chaos run on Citus (test/scale/chaos.test.ts): while a worker node restarts, the
// coordinator fails a statement with ERROR 08006 "connection to the remote node … failed" and
// keeps the session. Taken for a lost connection, the transaction was never rolled back: the
// request hung, its connection sat "idle in transaction (aborted)" until the server's idle
// timeout (30 s), and the API's pool ran dry. Here the server raises the same errors itself.

let db: TestDatabase;

beforeAll(async () => {
  // One connection: a transaction left open would hold the whole pool.
  db = await createTestDatabase({ max: 1 });
});
afterAll(async () => {
  await db.drop();
});

const raise = (code: string) =>
  sql.raw(
    `DO $$ BEGIN RAISE EXCEPTION 'connection to the remote node 127.0.0.1:5502 failed' ` +
      `USING ERRCODE = '${code}'; END $$`,
  );

describe("a connection error the server reports at severity ERROR, its session open", () => {
  it.each(["08006", "57P01"])(
    "%s in a transaction: rolled back and rejected as unavailable, the connection reused",
    async (code) => {
      const outcome = await Promise.race([
        db.db
          .transaction(async (tx) => {
            await tx.execute(sql`SELECT 1`);
            await tx.execute(raise(code));
          })
          .then(
            () => "committed",
            (error: unknown) => error,
          ),
        new Promise((r) => setTimeout(() => r("still pending after 3 s"), 3000)),
      ]);
      expect(isUnavailable(outcome), String(outcome)).toBe(true);
      expect(isConnectionLost(outcome)).toBe(false);
      // The pool's one connection answers, outside any transaction.
      const [row] = await db.db.execute<{ open: boolean }>(
        sql`SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS open`,
      );
      expect(row?.open).toBe(false);
    },
  );
});

// Found by the same run: a COMMIT whose part on the restarting worker failed, or a statement
// on a connection to it, was answered 500.
describe("Citus's failed transaction on a worker node", () => {
  const failure = (message: string) =>
    db.db
      .execute(sql.raw(`DO $$ BEGIN RAISE EXCEPTION '${message}' USING ERRCODE = 'XX000'; END $$`))
      .then(
        () => undefined,
        (error: unknown) => error,
      );

  it("is unavailable (503, retry with the same key), as Citus words it", async () => {
    for (const message of [
      "could not commit transaction for shard 102015 on at least one active node",
      "could not commit transaction for shard 102015 on any active node",
      "could not commit transaction on any active node",
      "failure on connection marked as essential: 127.0.0.1:5501",
    ]) {
      const error = await failure(message);
      expect(isUnavailable(error), message).toBe(true);
    }
  });

  it("another internal error stays one (500)", async () => {
    expect(isUnavailable(await failure("could not commit the books"))).toBe(false);
  });
});
