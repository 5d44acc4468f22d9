import { sql } from "drizzle-orm";
import type { Database, Tx } from "../db/client.ts";
import { pgErrorCode } from "../db/errors.ts";
import { inLockOrder } from "../db/lock-order.ts";
import { MicroBatcher } from "../db/micro-batcher.ts";
import { batchThenAlone, retryingConflicts } from "../db/retry-conflicts.ts";
import { ONE_SHARD, shardsOf } from "../db/shards.ts";
import { gatherEvents } from "../events/append-events.ts";
import type { Role } from "../http/context.ts";
import { HttpError } from "../http/problem.ts";
import { type Rendered, renderOutcome } from "../http/respond.ts";
import { bucketOf } from "../ledger/ids.ts";
import { bucketArray, textArray } from "../ledger/rows.ts";
import { DeferredCounts } from "../metrics.ts";

const LOCK_NOT_AVAILABLE = "55P03";

/** One mutating request, ready to apply. */
export interface WriteCommand {
  key?: { role: Role; key: string; hash: string } | undefined;
  /** The account, hold or promotion the request names: its key belongs to it. */
  scope: string;
  /** The bucket of that resource, where its key is kept. */
  bucket: number;
  /** Lock-order key (lockKey of the account it locks): a batch applies its commands sorted by it. */
  order: string;
  /**
   * The user account an atomic effect posts on. A batch of such effects locks all of them, in
   * lock order, before any effect runs: each posting then locks its bucket's system row, and
   * system rows are only ever locked after every user row a transaction locks.
   */
  posts?: string | undefined;
  status: number;
  requestId: string;
  effect: (tx: Tx) => Promise<unknown>;
  /**
   * True when the effect writes nothing if it throws a domain error (one conditional
   * statement decides), so it can share a transaction with other commands without a
   * savepoint. Other effects run alone, inside a savepoint.
   */
  atomic: boolean;
  /**
   * For a command whose verb can apply many inputs in one statement (placeHolds): a batch of
   * such commands makes one call of `verb` instead of one `effect` each.
   */
  many?: Many | undefined;
}

/** Applies many inputs in one statement; answers, in order, a value or the DomainError that refused each. */
// biome-ignore lint/suspicious/noExplicitAny: each verb has its own input type
export type ManyVerb = (tx: Tx, inputs: any[]) => Promise<unknown[]>;

export interface Many {
  verb: ManyVerb;
  input: unknown;
}

export type WriteOutcome =
  | { kind: "fresh"; response: Rendered }
  | { kind: "stored"; response: Rendered; hash: string };

type StoredRow = {
  bucket: number;
  role: Role;
  scope: string;
  key: string;
  request_hash: string;
  response_status: number;
  response_body: string;
};

type Key = { bucket: number; role: Role; scope: string; key: string; hash: string };

const keyId = (k: Omit<Key, "hash">) => `${k.bucket}\u0000${k.role}\u0000${k.scope}\u0000${k.key}`;

/**
 * Applies an ordered list of commands in ONE transaction and returns one outcome per command,
 * in order. Idempotency survives batching: keyed commands claim their keys with one INSERT
 * (sorted, so concurrent batches cannot deadlock on each other's keys); a key already stored
 * is replayed; a key repeated inside the batch runs once and its copies replay it. Each
 * command's domain error is rendered and stored as its own outcome without affecting the
 * others. The effects are issued together and pipelined on the transaction's connection, in
 * lock order. Any other error aborts the whole transaction and is thrown. The effects' hold
 * counts are taken once the transaction has committed.
 */
export async function applyWrites(db: Database, commands: WriteCommand[]): Promise<WriteOutcome[]> {
  if (commands.length > 1 && commands.some((c) => !c.atomic)) {
    throw new Error("only atomic commands can share a transaction");
  }
  // Each command's key and its id, made once: sorting and matching use them many times.
  const keys = commands.map((c): Key | undefined =>
    c.key ? { ...c.key, bucket: c.bucket, scope: c.scope } : undefined,
  );
  const ids = keys.map((key) => key && keyId(key));
  const leaders = new Map<string, number>();
  const leaderOf = ids.map((id, i) => {
    if (id === undefined) return i;
    if (!leaders.has(id)) leaders.set(id, i);
    return leaders.get(id)!;
  });
  const keyed = [...leaders.values()].sort((a, b) => (ids[a]! < ids[b]! ? -1 : 1));

  const plain = (await shardsOf(db)) === ONE_SHARD;
  let claiming = true;
  const counts = new DeferredCounts();
  try {
    const outcomes = await db.transaction(async (tx) => {
      counts.cover(tx);
      const claimed = new Set<string>();
      const stored = new Map<string, WriteOutcome>();
      if (keyed.length > 0) {
        const rows = await tx.execute<Omit<Key, "hash">>(sql`
          INSERT INTO idempotency_keys (bucket, role, scope, key, request_hash, response_status, response_body)
          ${keyRows(
            plain,
            keyed.map((i) => ({ ...keys[i]!, status: 0, body: "" })),
          )}
          ON CONFLICT DO NOTHING
          RETURNING bucket, role, scope, key`);
        for (const r of rows) claimed.add(keyId(r));
        const missing = keyed.filter((i) => !claimed.has(ids[i]!)).map((i) => keys[i]!);
        if (missing.length > 0) {
          // By = ANY (see textArray), not a join: the columns' sets cross each other, so only
          // the keys asked for are kept.
          const asked = new Set(missing.map(keyId));
          const found = await tx.execute<StoredRow>(sql`
            SELECT bucket, role, scope, key, request_hash, response_status, response_body
              FROM idempotency_keys
             WHERE bucket = ANY (${bucketArray([...new Set(missing.map((k) => k.bucket))])})
               AND scope = ANY (${textArray([...new Set(missing.map((k) => k.scope))])})
               AND role = ANY (${textArray([...new Set(missing.map((k) => k.role))])})
               AND key = ANY (${textArray(missing.map((k) => k.key))})`);
          for (const r of found) {
            if (!asked.has(keyId(r))) continue;
            stored.set(keyId(r), {
              kind: "stored",
              hash: r.request_hash,
              response: { status: r.response_status, body: r.response_body },
            });
          }
        }
      }
      claiming = false;

      const toRun = inLockOrder(commands, (command) => command.order)
        .filter(
          ({ item, index }) => leaderOf[index] === index && (!item.key || claimed.has(ids[index]!)),
        )
        .map(({ item, index }) => ({ command: item, index }));
      await lockPostedAccounts(
        tx,
        toRun.map(({ command }) => command),
      );
      const rendered = await gatherEvents(tx, () =>
        runEffects(
          tx,
          toRun.map(({ command }) => command),
          counts,
        ),
      );
      const fresh = new Map<number, Rendered>(toRun.map(({ index }, i) => [index, rendered[i]!]));

      const completed = toRun
        .filter(({ command }) => command.key)
        .map(({ index }) => ({
          ...keys[index]!,
          status: fresh.get(index)!.status,
          body: fresh.get(index)!.body,
        }));
      if (completed.length > 0) {
        // Every key is there (claimed above), so each row takes the DO UPDATE, found through the
        // unique index: no join with the set, which a prepared statement's kept plan could do
        // by scanning the whole table.
        await tx.execute(sql`
          INSERT INTO idempotency_keys (bucket, role, scope, key, request_hash, response_status, response_body)
          ${keyRows(plain, completed)}
          ON CONFLICT (bucket, role, scope, key) DO UPDATE
             SET response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body`);
      }
      return leaderOf.map((leader, index): WriteOutcome => {
        const own = fresh.get(index);
        if (own) return { kind: "fresh", response: own };
        const leaderResponse = fresh.get(leader);
        if (leaderResponse)
          return { kind: "stored", response: leaderResponse, hash: commands[leader]!.key!.hash };
        const found = stored.get(ids[index]!);
        if (!found) throw new Error("idempotency key vanished between conflict and read");
        return found;
      });
    });
    counts.commit();
    return outcomes;
  } catch (error) {
    if (claiming && commands.length === 1 && pgErrorCode(error) === LOCK_NOT_AVAILABLE) {
      throw new HttpError(
        "idempotency_key_in_use",
        "a request with this Idempotency-Key is still in progress; retry shortly",
      );
    }
    throw error;
  }
}

/**
 * The rows of idempotency keys, after an INSERT's column list. On plain Postgres one jsonb
 * parameter, so that each statement is one text, prepared once per connection: VALUES rows make
 * a text per batch size, and each text new to a connection is parsed and described first, a
 * round trip before it runs, and planned anew at each of its first runs (in a bench run, at
 * every run: 140 key statements of 52 texts). On Citus VALUES rows: a VALUES insert into one
 * shard is routed to it, where INSERT … SELECT from a JSON set goes through the coordinator by
 * COPY, which makes the transaction commit in two phases.
 */
const keyRows = (plain: boolean, keys: (Key & { status: number; body: string })[]) =>
  plain
    ? sql`SELECT bucket, role, scope, key, hash, status, body
            FROM jsonb_to_recordset(${JSON.stringify(keys)}::jsonb)
                 AS k(bucket int, role text, scope text, key text, hash text, status int, body text)`
    : sql`VALUES ${sql.join(
        keys.map(
          (k) =>
            sql`(${k.bucket}::int, ${k.role}, ${k.scope}, ${k.key}, ${k.hash}, ${k.status}::int, ${k.body})`,
        ),
        sql`, `,
      )}`;

/** Locks, in lock order, the user accounts that a batch of several posting effects posts on. */
async function lockPostedAccounts(tx: Tx, commands: WriteCommand[]): Promise<void> {
  const accounts = [...new Set(commands.flatMap((c) => (c.posts ? [c.posts] : [])))];
  if (commands.length < 2 || accounts.length === 0) return;
  await tx.execute(sql`
    SELECT 1 FROM accounts
     WHERE bucket = ANY (${bucketArray([...new Set(accounts.map(bucketOf))])})
       AND id = ANY (${textArray(accounts)})
     ORDER BY bucket, id COLLATE "C"
       FOR NO KEY UPDATE`);
}

/**
 * The commands' effects, rendered in order. Commands that share a ManyVerb (a batch of them
 * always does) make one call of it; the others are issued together and pipelined on the
 * transaction's connection, in the order given (lock order).
 */
async function runEffects(
  tx: Tx,
  commands: WriteCommand[],
  counts: DeferredCounts,
): Promise<Rendered[]> {
  const verb = commands[0]?.many?.verb;
  if (commands.length > 1 && verb && commands.every((c) => c.many?.verb === verb)) {
    const results = await verb(
      tx,
      commands.map((c) => c.many!.input),
    );
    if (results.length !== commands.length) throw new Error("a batch verb answered short");
    return Promise.all(
      commands.map((command, i) =>
        renderOutcome(command.requestId, command.status, async () => {
          const result = results[i];
          if (result instanceof Error) throw result;
          return result;
        }),
      ),
    );
  }
  return Promise.all(
    commands.map((command) =>
      renderOutcome(command.requestId, command.status, () =>
        command.atomic ? command.effect(tx) : inSavepoint(tx, counts, command.effect),
      ),
    ),
  );
}

/** `effect` in a savepoint, whose hold counts join the transaction's only if it is released. */
async function inSavepoint(
  tx: Tx,
  counts: DeferredCounts,
  effect: WriteCommand["effect"],
): Promise<unknown> {
  const own = new DeferredCounts();
  const result = await tx.transaction((savepoint) => {
    own.cover(savepoint);
    return effect(savepoint);
  });
  counts.absorb(own);
  return result;
}

export interface BatchOptions {
  /** How long the first command of a batch waits for company; 0 disables batching. */
  windowMs: number;
  maxSize: number;
}

/** Applies one command in its own transaction, run again if it was a deadlock victim. */
const applyAlone = (db: Database, command: WriteCommand): Promise<WriteOutcome> =>
  retryingConflicts(async () => (await applyWrites(db, [command]))[0]!);

/**
 * The in-process micro-batcher of DESIGN.md section 7: concurrent atomic commands are
 * gathered for at most `windowMs` and applied by applyWrites in one transaction, so the
 * commit is shared. If a batch fails as a whole (a deadlock with another process, a lock
 * timeout on a contended key), each of its commands is retried alone, so one command's
 * trouble is never its batch-mates' error.
 */
export function createWritePath(db: Database, options: BatchOptions) {
  const newBatcher = () =>
    new MicroBatcher<WriteCommand, WriteOutcome>(
      (commands) =>
        batchThenAlone(commands, async (batch) =>
          (await applyWrites(db, batch)).map((value) => ({ status: "fulfilled", value })),
        ),
      // Two batches in flight: one gathers while the other commits. More split the load into
      // smaller batches, each paying six round trips, and on a hot account they only wait for
      // each other's row lock (one hot account: 1,850 vs 1,650 holds/s with four).
      { maxSize: options.maxSize, windowMs: options.windowMs, concurrency: 2 },
    );
  // One batcher per ManyVerb, so that its batches are all of a kind and make one statement, and
  // per shard, so that each batch is a single-shard transaction (on Citus, one worker and no
  // two-phase commit).
  const batchers = new Map<ManyVerb | undefined, Map<number, ReturnType<typeof newBatcher>>>();
  const batcherFor = (verb: ManyVerb | undefined, shard: number) => {
    let byShard = batchers.get(verb);
    if (!byShard) {
      byShard = new Map();
      batchers.set(verb, byShard);
    }
    let batcher = byShard.get(shard);
    if (!batcher) {
      batcher = newBatcher();
      byShard.set(shard, batcher);
    }
    return batcher;
  };
  return async (command: WriteCommand): Promise<WriteOutcome> => {
    if (!command.atomic || options.windowMs <= 0) return applyAlone(db, command);
    const shards = await shardsOf(db);
    return batcherFor(command.many?.verb, shards.of(command.bucket)).submit(command);
  };
}

export type WritePath = ReturnType<typeof createWritePath>;
