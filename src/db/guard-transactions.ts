import type postgres from "postgres";
import { isConnectionLost } from "./errors.ts";

// biome-ignore lint/suspicious/noExplicitAny: postgres.js's begin/savepoint overloads
type Scope = (sql: any) => unknown;

/**
 * A callback that failed because its connection died is left pending, never rejected.
 *
 * postgres.js (3.4.9) answers a transaction or savepoint callback that rejected by writing
 * ROLLBACK (or ROLLBACK TO SAVEPOINT) on the transaction's connection. When the connection is
 * the thing that failed, its socket is already gone: the write is deferred with setImmediate
 * and throws "Cannot read properties of null (reading 'write')" outside any promise, which
 * kills the process (porsager/postgres#1154, #1208); and if the pool has reconnected that
 * connection meanwhile, the ROLLBACK lands in another request's session. Nothing needs to be
 * written: the server rolls back a transaction whose session ends, and postgres.js rejects
 * the transaction itself (begin races the callback against the connection's close) with
 * CONNECTION_CLOSED, which callers see as 503 unavailable. So the callback's promise is
 * swapped for one that never settles; with nothing referring to it, it is garbage. `lost` is
 * told the error, so that the transaction fails even when that close never reaches begin.
 */
function holdIfLost(
  scope: Scope,
  eachScope: (sql: unknown) => void,
  lost: (error: unknown) => void,
): Scope {
  return (sql) => {
    eachScope(sql);
    guardSavepoints(sql, eachScope, lost);
    let result: unknown;
    try {
      result = scope(sql);
    } catch (error) {
      result = Promise.reject(error);
    }
    return Promise.resolve(Array.isArray(result) ? Promise.all(result) : result).catch(
      (error: unknown) => {
        if (isConnectionLost(error)) {
          lost(error);
          return new Promise(() => {});
        }
        throw error;
      },
    );
  };
}

function guardSavepoints(
  // biome-ignore lint/suspicious/noExplicitAny: the transaction's sql, which has savepoint
  sql: any,
  eachScope: (sql: unknown) => void,
  lost: (error: unknown) => void,
) {
  const savepoint = sql.savepoint;
  if (typeof savepoint !== "function") return;
  sql.savepoint = (name: unknown, fn?: Scope) =>
    typeof name === "function"
      ? savepoint(holdIfLost(name as Scope, eachScope, lost))
      : savepoint(name, holdIfLost(fn!, eachScope, lost));
}

/**
 * Wraps `sql.begin` (what drizzle's db.transaction calls) so that a lost connection is never
 * written to. `eachScope` is applied to the `sql` of every transaction and savepoint, which
 * postgres.js creates afresh for each.
 */
export function guardTransactions(
  sql: postgres.Sql,
  eachScope: (sql: unknown) => void = () => {},
): void {
  const begin = sql.begin.bind(sql) as (...args: unknown[]) => Promise<unknown>;
  (sql as { begin: unknown }).begin = (options: unknown, fn?: Scope) => {
    // postgres.js rejects begin only when the connection's close reaches it, and closed() in
    // its connection.js returns early, without telling it, for a connection that has not
    // finished opening. A transaction left pending holds a slot of the write path's batcher
    // for good: after a Postgres restart in a chaos run (seed 180075155) one API answered no
    // purchase again. So begin also fails as soon as a callback of it saw its connection lost.
    let lost!: (error: unknown) => void;
    const gone = new Promise<never>((_, reject) => {
      lost = reject;
    });
    const run =
      typeof options === "function"
        ? begin(holdIfLost(options as Scope, eachScope, lost))
        : begin(options, holdIfLost(fn!, eachScope, lost));
    return Promise.race([run, gone]);
  };
}
