import { sql } from "drizzle-orm";
import { expect } from "vitest";
import type { Db } from "../../src/db/client.ts";

/** The database's clock: promotion windows are judged by it, not by the test process's. */
export async function dbNow(db: Db): Promise<Date> {
  const [row] = await db.execute<{ ms: number }>(
    sql`SELECT floor(extract(epoch FROM now()) * 1000)::int8 AS ms`,
  );
  return new Date(row!.ms);
}

export interface SequencedEntry {
  seq: number;
  kind: string;
  amount: number;
  settledAfter: number;
}

/** A user account's entries in its sequence order (1, 2, 3, …). */
export async function entriesInOrder(db: Db, accountId: string): Promise<SequencedEntry[]> {
  const rows = await db.execute<{ seq: number; kind: string; amount: number; settled: number }>(
    sql`SELECT seq, kind, amount, settled_after AS settled FROM entries
         WHERE account_id = ${accountId} ORDER BY seq`,
  );
  return rows.map((r) => ({ seq: r.seq, kind: r.kind, amount: r.amount, settledAfter: r.settled }));
}

/**
 * Replays an account's entries in sequence order, the way one serial execution of its
 * requests would apply them, and fails the test where the ledger disagrees: each entry's
 * settledAfter is the running balance, and each promotion credits exactly the balance before
 * it × (multiplier − 1). Returns the final balance and the kinds in order.
 */
export function replaySerially(
  entries: SequencedEntry[],
  multiplier: number,
): { settled: number; kinds: string[] } {
  const ordered = [...entries].sort((a, b) => a.seq - b.seq);
  let settled = 0;
  for (const [i, e] of ordered.entries()) {
    expect(e.seq, "entries are numbered 1, 2, 3, …").toBe(i + 1);
    if (e.kind === "promotion") {
      expect(e.amount, `promotion at seq ${e.seq} credits the settled balance before it`).toBe(
        settled * (multiplier - 1),
      );
    }
    settled += e.amount;
    expect(e.settledAfter, `settledAfter at seq ${e.seq}`).toBe(settled);
  }
  return { settled, kinds: ordered.map((e) => e.kind) };
}

/**
 * The founding story (DESIGN.md section 1) run serially in a given order: a credit of 50, a
 * promotion that doubles, a purchase of 20 settled. The purchase's hold is not an entry: only
 * its settlement is, and a released purchase leaves none.
 */
export function storyOutcome(kinds: string[]): number {
  let settled = 0;
  for (const kind of kinds) {
    if (kind === "credit") settled += 50;
    else if (kind === "promotion") settled *= 2;
    else if (kind === "purchase") settled -= 20;
    else throw new Error(`unexpected entry kind ${kind}`);
  }
  return settled;
}

/**
 * Waits 0 to `maxMs` ms. Requests sent at exactly the same instant tend to reach the account
 * lock in the same order every time; a little jitter lets a race land both ways.
 */
export const jitter = (maxMs: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs));
