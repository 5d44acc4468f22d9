import { createHash } from "node:crypto";
import { and, eq, lt, sql } from "drizzle-orm";
import type { Context } from "hono";
import type { Database, Tx } from "../db/client.ts";
import { pgErrorCode } from "../db/errors.ts";
import { idempotencyKeys } from "../db/schema/index.ts";
import type { AppEnv } from "./context.ts";
import { HttpError } from "./problem.ts";
import { type Rendered, renderOutcome, type Sent, send } from "./respond.ts";

export const IDEMPOTENCY_KEY = /^[\x20-\x7E]{1,255}$/;
/** Replays are guaranteed for this long; the purge removes older keys. */
export const IDEMPOTENCY_RETENTION_HOURS = 24;

const LOCK_NOT_AVAILABLE = "55P03";

function requestHash(c: Context<AppEnv>, body: unknown): string {
  return createHash("sha256")
    .update(`${c.req.method} ${c.req.path}\n${JSON.stringify(body ?? null)}`)
    .digest("hex");
}

/**
 * Runs `effect` at most once per (role, Idempotency-Key).
 *
 * The key row is inserted in the same transaction as the effect and completed with the
 * rendered response before commit. A concurrent request with the same key blocks on that
 * row's unique index until the first commits, then finds the stored response and replays it;
 * if the first rolled back, the second proceeds as the first. If the wait outlasts the lock
 * timeout the caller gets 409 idempotency_key_in_use and nothing happens.
 *
 * Business errors thrown by `effect` (domain errors) are stored and replayed like successes;
 * their writes are undone by a savepoint. Any other error rolls everything back, key included.
 */
export async function idempotent(
  c: Context<AppEnv>,
  options: { required: boolean; status: number; body: unknown },
  effect: (tx: Tx) => Promise<unknown>,
): Promise<Sent> {
  const key = c.req.header("idempotency-key");
  const { db } = c.get("deps");
  const requestId = c.get("requestId");
  if (key === undefined) {
    if (options.required) {
      throw new HttpError(
        "idempotency_key_required",
        "this request needs an Idempotency-Key header",
      );
    }
    return send(c, await renderOutcome(requestId, options.status, () => db.transaction(effect)));
  }
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new HttpError(
      "invalid_request",
      "Idempotency-Key must be 1 to 255 printable ASCII characters",
      [{ field: "Idempotency-Key", message: "must be 1 to 255 printable ASCII characters" }],
    );
  }
  const role = c.get("role");
  const hash = requestHash(c, options.body);
  const outcome = await claimAndRun(db, { role, key, hash }, (tx) =>
    renderOutcome(requestId, options.status, () =>
      tx.transaction((savepoint) => effect(savepoint)),
    ),
  );
  if (outcome.kind === "fresh") return send(c, outcome.response);
  if (outcome.hash !== hash) {
    throw new HttpError(
      "idempotency_key_reused",
      "this Idempotency-Key was used for a different request",
    );
  }
  return send(c, outcome.response, { "Idempotent-Replayed": "true" });
}

type Claim =
  | { kind: "fresh"; response: Rendered }
  | { kind: "stored"; response: Rendered; hash: string };

async function claimAndRun(
  db: Database,
  id: { role: "admin" | "service"; key: string; hash: string },
  run: (tx: Tx) => Promise<Rendered>,
): Promise<Claim> {
  let claiming = true;
  try {
    return await db.transaction(async (tx) => {
      const claimed = await tx
        .insert(idempotencyKeys)
        .values({
          role: id.role,
          key: id.key,
          requestHash: id.hash,
          responseStatus: 0,
          responseBody: "",
        })
        .onConflictDoNothing()
        .returning({ role: idempotencyKeys.role });
      if (claimed.length === 0) {
        const [stored] = await tx
          .select()
          .from(idempotencyKeys)
          .where(and(eq(idempotencyKeys.role, id.role), eq(idempotencyKeys.key, id.key)));
        if (!stored) throw new Error("idempotency key vanished between conflict and read");
        return {
          kind: "stored",
          hash: stored.requestHash,
          response: { status: stored.responseStatus, body: stored.responseBody },
        };
      }
      claiming = false;
      const response = await run(tx);
      await tx
        .update(idempotencyKeys)
        .set({ responseStatus: response.status, responseBody: response.body })
        .where(and(eq(idempotencyKeys.role, id.role), eq(idempotencyKeys.key, id.key)));
      return { kind: "fresh", response };
    });
  } catch (error) {
    if (claiming && pgErrorCode(error) === LOCK_NOT_AVAILABLE) {
      throw new HttpError(
        "idempotency_key_in_use",
        "a request with this Idempotency-Key is still in progress; retry shortly",
      );
    }
    throw error;
  }
}

/** Deletes keys older than the retention period; safe to run from any number of processes. */
export async function purgeIdempotencyKeys(db: Database): Promise<number> {
  const deleted = await db
    .delete(idempotencyKeys)
    .where(
      lt(
        idempotencyKeys.createdAt,
        sql`now() - make_interval(hours => ${IDEMPOTENCY_RETENTION_HOURS})`,
      ),
    )
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}
