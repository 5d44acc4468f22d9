/**
 * Makes every parameterised query of `sql` a named prepared statement, cached per connection.
 *
 * drizzle's `execute` calls postgres.js's `unsafe` with `prepare: false`, and for an unnamed
 * statement with parameters postgres.js first sends Parse + Describe and waits for the answer
 * before it sends Bind + Execute: two round trips and the full SQL text on every query, which
 * Postgres then parses and plans again. A prepared statement is parsed once per connection;
 * later runs are one small Bind + Execute that postgres.js coalesces with its neighbours into
 * one socket write. holdfast's SQL is static text with $n parameters, so the per-connection
 * cache is bounded by the number of statements in the code.
 */
// biome-ignore lint/suspicious/noExplicitAny: postgres.js's unsafe overloads
export function prepareByDefault(sql: any): void {
  const unsafe = sql.unsafe;
  sql.unsafe = (query: string, args?: unknown[], options?: object) =>
    Array.isArray(args) && args.length > 0
      ? unsafe(query, args, { ...options, prepare: true })
      : unsafe(query, args, options);
}
