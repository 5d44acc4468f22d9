import { INCOMPLETE_RESULT } from "./whole-results.ts";

/** The SQLSTATE of a Postgres error, looking through drizzle's DrizzleQueryError wrapper. */
export function pgErrorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

const CONNECTION_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/**
 * A deadlock victim (40P01) or a serialization failure (40001): Postgres rolled the transaction
 * back whole, and running it again is safe and will most likely succeed.
 */
export function isTransientConflict(error: unknown): boolean {
  const code = pgErrorCode(error);
  return code === "40P01" || code === "40001";
}

/**
 * Citus errors raised without a SQLSTATE of their own (XX000) when a worker node's connection
 * broke (a worker restarting):
 * - COMMIT failing because a worker node's part of the transaction could not commit
 *   (src/backend/distributed/connection/placement_connection.c), after "failed to commit
 *   transaction on <node>" warnings. holdfast has no deferred constraints or triggers, the other
 *   cause Citus names. Whether a single-node commit happened is unknown, which is what a retry
 *   with the same Idempotency-Key settles.
 * - A statement failing on a connection the coordinated transaction depends on
 *   (MarkRemoteTransactionFailed in remote_transaction.c): the transaction is aborted before any
 *   commit.
 */
const CITUS_NODE_FAILED = [
  /^could not commit transaction (?:for shard \d+ )?on (?:at least one|any) active node$/,
  /^failure on connection marked as essential: \S+:\d+$/,
];

const messageOf = (error: unknown): string | undefined => {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof (e as { code?: unknown }).code === "string") {
      const message = (e as { message?: unknown }).message;
      return typeof message === "string" ? message : undefined;
    }
  }
  return undefined;
};

/**
 * True when the database could not be reached or went away mid-request: a connection error,
 * the server shutting down or starting up (57P*), a connection exception (08*), or a bounded
 * wait running out (lock or statement timeout), or a deadlock or serialization failure that
 * outlasted the write path's retries, or a driver result that was not whole, or a Citus transaction
 * that failed on a worker node. These become 503 unavailable (retry), not 500.
 */
export function isUnavailable(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (!code) return false;
  return (
    (code === "XX000" && CITUS_NODE_FAILED.some((m) => m.test(messageOf(error) ?? ""))) ||
    CONNECTION_ERRORS.has(code) ||
    code.startsWith("08") ||
    code.startsWith("57P") ||
    code === "55P03" ||
    isTransientConflict(error) ||
    code === "57014" ||
    code === "53300" ||
    code === INCOMPLETE_RESULT
  );
}

/** Errors after which postgres.js closes the connection: the socket failed, or the server ended the session. */
const SOCKET_ERRORS = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
]);

/** The severity (ERROR, FATAL, …) of the error that carries the SQLSTATE, as pgErrorCode finds it. */
function pgErrorSeverity(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof (e as { code?: unknown }).code !== "string") continue;
    const severity = (e as { severity?: unknown }).severity;
    return typeof severity === "string" ? severity : undefined;
  }
  return undefined;
}

/**
 * True when the error means the connection itself is gone (not merely a failed statement): a
 * socket error, or a FATAL from a server shutting down (57P01–57P03) or a connection exception
 * (08*). postgres.js closes such a connection; nothing more can be written on it. The same
 * codes at severity ERROR leave the session open, in an aborted transaction that must be
 * rolled back: Citus reports a lost connection to a worker node as ERROR 08006 "connection to
 * the remote node … failed" (or relays the worker's 57P01) on a live coordinator session.
 */
export function isConnectionLost(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (!code) return false;
  if (SOCKET_ERRORS.has(code)) return true;
  if (!code.startsWith("08") && !/^57P0[123]$/.test(code)) return false;
  // Without a severity (not a server's error) as before: the connection is taken for gone.
  const severity = pgErrorSeverity(error);
  return severity === undefined || severity === "FATAL" || severity === "PANIC";
}
