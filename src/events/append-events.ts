import { sql } from "drizzle-orm";
import { atomically } from "../db/atomically.ts";
import type { Db } from "../db/client.ts";
import type { EventType } from "../db/schema/index.ts";
import { DomainError } from "../ledger/errors.ts";
import { bucketOf, newIdIn } from "../ledger/ids.ts";

/** A state change of a user account, and the resource as the API renders it after it. */
export interface NewEvent {
  type: EventType;
  accountId: string;
  data: unknown;
}

let written = true;

/** HOLDFAST_EVENTS=off turns the outbox off, to measure what it costs (npm run bench). */
export const setEventsWritten = (on: boolean): void => {
  written = on;
};

/** The transactions whose events are gathered and appended at once (see gatherEvents). */
const gathering = new WeakMap<object, NewEvent[]>();

/**
 * Appends the events of changes made in the transaction `tx` with one statement,
 * holdfast_append_events (src/db/sql/append_events.sql), which numbers each account's events.
 * `events` are in the order the changes were applied. In a transaction that gathers its events
 * (a write path batch), they are kept for its one statement instead.
 */
export async function appendEvents(tx: Db, events: NewEvent[]): Promise<void> {
  if (!written || events.length === 0) return;
  const gathered = gathering.get(tx);
  if (gathered) {
    gathered.push(...events);
    return;
  }
  const rows = events.map((e, i) => {
    const bucket = bucketOf(e.accountId);
    return { i, bucket, id: newIdIn(bucket), account_id: e.accountId, type: e.type, data: e.data };
  });
  await tx.execute(sql`SELECT holdfast_append_events(${JSON.stringify(rows)}::jsonb)`);
}

/**
 * Makes the changes run in `tx` by `apply` gather their events, then appends them all with one
 * statement: a write path batch's events, whatever its commands, cost it one statement.
 */
export async function gatherEvents<T>(tx: Db, apply: () => Promise<T>): Promise<T> {
  const events: NewEvent[] = [];
  gathering.set(tx, events);
  let result: T;
  try {
    result = await apply();
  } finally {
    gathering.delete(tx);
  }
  await appendEvents(tx, events);
  return result;
}

/**
 * A batch verb made to append, in the same transaction, one event of `type` for each of its
 * results that is not a refusal: the change of that result's hold's account.
 */
export function withHoldEvents<I, R extends { hold: { accountId: string } }>(
  type: EventType,
  decide: (tx: Db, inputs: I[]) => Promise<(R | DomainError)[]>,
): (db: Db, inputs: I[]) => Promise<(R | DomainError)[]> {
  return (db, inputs) =>
    atomically(db, async (tx) => {
      const results = await decide(tx, inputs);
      await appendEvents(
        tx,
        results.flatMap((r) =>
          r instanceof DomainError ? [] : [{ type, accountId: r.hold.accountId, data: r }],
        ),
      );
      return results;
    });
}
