/** The `code` of an IncompleteResultError; errors.ts counts it as unavailable (503, retry). */
export const INCOMPLETE_RESULT = "INCOMPLETE_RESULT";

export class IncompleteResultError extends Error {
  readonly code = INCOMPLETE_RESULT;
  constructor(problem: string) {
    super(`the database driver returned an incomplete result: ${problem}`);
    this.name = "IncompleteResultError";
  }
}

/** What postgres.js's Result adds to the array of rows. */
interface Result extends ArrayLike<unknown> {
  count?: number | null;
  columns?: unknown[] | null;
}

function resultProblem(result: Result): string | undefined {
  for (let i = 0; i < result.length; i++) {
    if (result[i] === undefined) return `row ${i} of ${result.length} is missing`;
  }
  // A statement that returns rows (it has columns) reports in its command tag how many it sent.
  if (result.columns?.length && typeof result.count === "number" && result.count !== result.length)
    return `${result.length} rows where the server sent ${result.count}`;
  return undefined;
}

/**
 * Why `value`, what postgres.js resolved a query with, is not a whole answer, or undefined
 * when it is. A single statement resolves with its Result; several (a simple query) with a
 * plain array of Results.
 */
export function incompleteness(value: unknown): string | undefined {
  if (!Array.isArray(value)) return "not an array of rows";
  if ("count" in value) return resultProblem(value as Result);
  for (const result of value) {
    const problem = Array.isArray(result) ? resultProblem(result as Result) : "not a result";
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Makes every query of `sql.unsafe` (all of drizzle's) reject with an IncompleteResultError
 * instead of resolving with a result that is not whole.
 *
 * postgres.js 3.4.9 resolved the query after a failed stream with a sparse array (its row
 * counter was not reset: patches/postgres+3.4.9.patch), which holdfast read as a missing
 * account or a long entry page, and could have stored as an idempotent response. The driver is
 * patched; this check is what keeps a driver fault of that kind from ever becoming an answer.
 * It hooks the query's own `resolve`, which the connection calls once with the result.
 */
// biome-ignore lint/suspicious/noExplicitAny: postgres.js's unsafe overloads
export function requireWholeResults(sql: any): void {
  const unsafe = sql.unsafe;
  sql.unsafe = (...args: unknown[]) => {
    const query = unsafe(...args);
    const resolve = query.resolve;
    query.resolve = (value: unknown) => {
      const problem = incompleteness(value);
      return problem === undefined
        ? resolve(value)
        : query.reject(new IncompleteResultError(problem));
    };
    return query;
  };
}
