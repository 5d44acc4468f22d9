import { createHash } from "node:crypto";
import type { Context } from "hono";
import type { Tx } from "../db/client.ts";
import { bucketOf, bucketOfId, lockKey } from "../ledger/ids.ts";
import type { Many } from "../writes/write-path.ts";
import type { AppEnv } from "./context.ts";
import { HttpError } from "./problem.ts";
import { type Rendered, type Sent, send } from "./respond.ts";

export const IDEMPOTENCY_KEY = /^[\x20-\x7E]{1,255}$/;
/** The header that marks a replayed response. */
export const REPLAYED = { "Idempotent-Replayed": "true" } as const;

function requestHash(c: Context<AppEnv>, body: unknown): string {
  return createHash("sha256")
    .update(`${c.req.method} ${c.req.path}\n${JSON.stringify(body ?? null)}`)
    .digest("hex");
}

/**
 * Runs `effect` at most once per (role, Idempotency-Key), through the write path
 * (src/writes/write-path.ts).
 *
 * The key row is inserted in the same transaction as the effect and completed with the
 * rendered response before commit. A concurrent request with the same key blocks on that
 * row's unique index until the first commits, then finds the stored response and replays it;
 * if the first rolled back, the second proceeds as the first. If the wait outlasts the lock
 * timeout the caller gets 409 idempotency_key_in_use and nothing happens.
 *
 * Business errors thrown by `effect` (domain errors) are stored and replayed like successes.
 * Any other error rolls everything back, key included.
 *
 * `batch` is the lock-order key of an effect that decides in one conditional statement and
 * writes nothing when it refuses (lockKey of the account it locks; for a settle, whose
 * statement orders its own locks, the hold): such effects may share a transaction with other
 * requests (the micro-batcher). Other effects run alone, inside a savepoint.
 */
export async function idempotent(
  c: Context<AppEnv>,
  options: IdempotentOptions,
  effect: (tx: Tx) => Promise<unknown>,
): Promise<Sent> {
  const { rendered, replayed } = await idempotentOutcome(c, options, effect);
  return send(c, rendered, replayed ? REPLAYED : {});
}

export interface IdempotentOptions {
  required: boolean;
  status: number;
  body: unknown;
  /** The account, hold or promotion the request names, which its key belongs to. */
  scope: string;
  /** The bucket of that resource: its key is kept there. */
  bucket: number;
  batch?: string;
  /** With `batch`: the user account the effect posts on (WriteCommand.posts). */
  posts?: string;
  /** With `batch`: the verb and input that apply this request together with its batch-mates. */
  many?: Many;
}

/** idempotent() without the sending: the response to send, and whether it is a replay. */
export async function idempotentOutcome(
  c: Context<AppEnv>,
  options: IdempotentOptions,
  effect: (tx: Tx) => Promise<unknown>,
): Promise<{ rendered: Rendered; replayed: boolean }> {
  const key = c.req.header("idempotency-key");
  if (key === undefined && options.required) {
    throw new HttpError("idempotency_key_required", "this request needs an Idempotency-Key header");
  }
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
    throw new HttpError(
      "invalid_request",
      "Idempotency-Key must be 1 to 255 printable ASCII characters",
      [{ field: "Idempotency-Key", message: "must be 1 to 255 printable ASCII characters" }],
    );
  }
  const hash = requestHash(c, options.body);
  const outcome = await c.get("writes")({
    key: key === undefined ? undefined : { role: c.get("role"), key, hash },
    scope: options.scope,
    bucket: options.bucket,
    order: options.batch ?? "",
    posts: options.posts,
    atomic: options.batch !== undefined,
    many: options.many,
    status: options.status,
    requestId: c.get("requestId"),
    effect,
  });
  if (outcome.kind === "fresh") return { rendered: outcome.response, replayed: false };
  if (outcome.hash !== hash) {
    throw new HttpError(
      "idempotency_key_reused",
      "this Idempotency-Key was used for a different request",
    );
  }
  return { rendered: outcome.response, replayed: true };
}

/** The options of a request on one account that decides in one statement (see idempotent). */
export const onAccount = (accountId: string) => ({
  scope: accountId,
  bucket: bucketOf(accountId),
  batch: lockKey(accountId),
});

/** The options of a request on one hold that decides in one statement (see idempotent). */
export const onHold = (holdId: string) => ({
  scope: holdId.toLowerCase(),
  bucket: bucketOfId(holdId),
  batch: holdId,
});
