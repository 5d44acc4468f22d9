import { drizzle } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import type { Database } from "../../src/db/client.ts";
import * as schema from "../../src/db/schema/index.ts";
import { requireWholeResults } from "../../src/db/whole-results.ts";

/** How a faulty driver damages a whole result: holes in front (postgres.js 3.4.9), or rows lost. */
export type Damage = "holes" | "short";

type Result = unknown[] & { count?: number | null; columns?: unknown[] | null };

function damage(result: Result, how: Damage): Result {
  const out: Result = [];
  if (how === "holes") {
    out.length = 3;
    out.push(...result);
  } else {
    out.push(...result.slice(0, -1));
  }
  Object.defineProperties(out, {
    count: { value: result.count },
    columns: { value: result.columns },
  });
  return out;
}

/**
 * A stub of postgres.js's `sql` over a real one: each query runs for real, and when
 * `fault.damage` is set and the statement matches `fault.when`, its result is handed back
 * damaged, the way the driver bug did. Queries resolve through the query's own `resolve`, as
 * the driver's connection does, so holdfast's checks see what they would see on a real fault.
 */
export function sparseDriver(
  real: postgres.Sql,
  fault: { damage?: Damage | undefined; when: RegExp },
): postgres.Sql {
  // biome-ignore lint/suspicious/noExplicitAny: a partial stand-in for postgres.js's Sql
  const stub = (inner: any): any => {
    const s = {
      options: inner.options,
      unsafe(query: string, args?: unknown[], options?: object) {
        let resolve!: (v: unknown) => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise((a, b) => {
          resolve = a;
          reject = b;
        });
        const q = Object.assign(promise, {
          isRaw: false as false | "values",
          resolve: (v: unknown) => resolve(v),
          reject: (e: unknown) => reject(e),
          values() {
            q.isRaw = "values";
            return q;
          },
        });
        setImmediate(() => {
          const real = inner.unsafe(query, args, options);
          (q.isRaw ? real.values() : real).then((result: Result) => {
            const how = fault.damage && fault.when.test(query) ? fault.damage : undefined;
            q.resolve(how ? damage(result, how) : result);
          }, q.reject);
        });
        return q;
      },
      begin: (fn: (tx: unknown) => unknown) => inner.begin((tx: unknown) => fn(stub(tx))),
      savepoint: (fn: (tx: unknown) => unknown) => inner.savepoint((tx: unknown) => fn(stub(tx))),
    };
    requireWholeResults(s);
    return s;
  };
  return stub(real);
}

export const sparseDatabase = (sql: postgres.Sql): Database => drizzle(sql, { schema });
