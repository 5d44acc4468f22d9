import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { BUCKETS, MAX_AMOUNT_SQL } from "../db/schema/index.ts";
import { shardsOf } from "../db/shards.ts";
import { bucketArray } from "./rows.ts";

export interface CheckResult {
  /** The number of the invariant in DESIGN.md section 3, or the section of another rule. */
  invariant: number | string;
  name: string;
  violations: number;
  examples: Record<string, unknown>[];
}

export interface VerifyReport {
  ok: boolean;
  checks: CheckResult[];
  totals: { accounts: number; transactions: number; entries: number; holds: number };
}

interface Check {
  invariant: CheckResult["invariant"];
  name: string;
  /** Selects one row per violation. */
  query: SQL;
}

/** How long past its deadline a pending hold may stay pending before it is a violation. */
export interface VerifyOptions {
  overdueGraceMs: number;
}

/**
 * `homes` is an int[] of every bucket's home bucket, indexed by bucket + 1: each shard's feed
 * gives its own positions (src/events/feeds.ts).
 */
function checks(options: VerifyOptions, homes: SQL): Check[] {
  return [
    {
      invariant: 1,
      name: "each ledger transaction has two or more entries summing to zero",
      query: sql`
        SELECT t.id AS transaction_id, count(e.*) AS entries, COALESCE(sum(e.amount), 0) AS sum
          FROM ledger_transactions t
          LEFT JOIN entries e ON e.bucket = t.bucket AND e.transaction_id = t.id
         GROUP BY t.bucket, t.id HAVING COALESCE(sum(e.amount), 0) <> 0 OR count(e.*) < 2`,
    },
    {
      invariant: 1,
      name: "the settled balances of all accounts sum to zero",
      query: sql`
        SELECT total FROM (SELECT COALESCE(sum(settled), 0) AS total FROM accounts) t
         WHERE total <> 0`,
    },
    {
      invariant: 2,
      name: "each account's stored settled balance equals the sum of its entries",
      query: sql`
        WITH computed AS (
          SELECT bucket, account_id, sum(amount) AS settled FROM entries GROUP BY bucket, account_id
        )
        SELECT a.id AS account_id, a.bucket, a.settled AS stored, COALESCE(c.settled, 0) AS from_entries
          FROM accounts a LEFT JOIN computed c ON c.bucket = a.bucket AND c.account_id = a.id
         WHERE a.settled <> COALESCE(c.settled, 0)`,
    },
    {
      invariant: 2,
      name: "each account's stored held balance equals the sum of its pending holds",
      query: sql`
        SELECT a.id AS account_id, a.held AS stored, COALESCE(h.held, 0) AS from_holds
          FROM accounts a
          LEFT JOIN (SELECT bucket, account_id, sum(amount) AS held FROM holds
                      WHERE status = 'pending' GROUP BY bucket, account_id) h
            ON h.bucket = a.bucket AND h.account_id = a.id
         WHERE a.held <> COALESCE(h.held, 0)`,
    },
    {
      invariant: 2,
      name: "each user account's entries are numbered 1, 2, 3, … with running balances",
      query: sql`
        SELECT account_id, seq, settled_after, running FROM (
          SELECT account_id, seq, settled_after,
                 sum(amount) OVER w AS running, row_number() OVER w AS position
            FROM entries e
           WHERE e.leg = 0
          WINDOW w AS (PARTITION BY account_id ORDER BY seq)
        ) x
         WHERE seq IS DISTINCT FROM position OR settled_after IS DISTINCT FROM running
        UNION ALL
        SELECT a.id, a.last_seq, NULL, NULL FROM accounts a
         WHERE a.kind = 'user'
           AND a.last_seq <> (SELECT count(*) FROM entries e
                               WHERE e.bucket = a.bucket AND e.account_id = a.id)`,
    },
    {
      invariant: 3,
      name: "no user account has negative settled or available balance, now or after any entry",
      query: sql`
        SELECT id AS account_id, settled, held FROM accounts
         WHERE kind = 'user' AND (settled < 0 OR held < 0 OR settled - held < 0)
        UNION ALL
        SELECT account_id, settled_after, NULL FROM entries
         WHERE settled_after IS NOT NULL AND settled_after < 0`,
    },
    {
      invariant: 4,
      name: "each settled hold has exactly one purchase transaction for 0 < settledAmount <= amount",
      query: sql`
        SELECT h.id AS hold_id, h.status, h.amount, h.settled_amount,
               count(DISTINCT e.transaction_id) AS transactions, sum(e.amount) FILTER (WHERE e.account_id = h.account_id) AS debited
          FROM holds h
          LEFT JOIN entries e ON e.bucket = h.bucket AND e.hold_id = h.id AND e.kind = 'purchase'
         GROUP BY h.bucket, h.id
        HAVING (h.status = 'settled' AND (count(DISTINCT e.transaction_id) <> 1
                  OR h.settled_amount NOT BETWEEN 1 AND h.amount
                  OR sum(e.amount) FILTER (WHERE e.account_id = h.account_id) <> -h.settled_amount
                  OR bool_or(e.transaction_id <> h.transaction_id)))
            OR (h.status <> 'settled' AND count(e.*) > 0)`,
    },
    {
      invariant: 8,
      name: "a hold's refunds sum to its refundedAmount, at most its settledAmount, on settled holds only",
      query: sql`
        SELECT h.id AS hold_id, h.status, h.settled_amount, h.refunded_amount,
               COALESCE(r.refunded, 0) AS from_refunds
          FROM holds h
          LEFT JOIN (SELECT bucket, hold_id, sum(amount) AS refunded FROM refunds
                      GROUP BY bucket, hold_id) r ON r.bucket = h.bucket AND r.hold_id = h.id
         WHERE h.refunded_amount <> COALESCE(r.refunded, 0)
            OR h.refunded_amount > COALESCE(h.settled_amount, 0)
            OR (h.status <> 'settled' AND h.refunded_amount <> 0)`,
    },
    {
      invariant: 8,
      name: "each refund posts exactly one refund transaction, and each refund transaction is a refund's",
      query: sql`
        SELECT r.id AS refund_id, t.id AS transaction_id, t.kind, e.account_id, e.amount, e.hold_id
          FROM refunds r
          FULL JOIN (SELECT * FROM ledger_transactions WHERE kind = 'refund') t
            ON t.bucket = r.bucket AND t.id = r.transaction_id
          LEFT JOIN entries e ON e.bucket = t.bucket AND e.transaction_id = t.id AND e.leg = 0
         WHERE r.id IS NULL OR t.id IS NULL
            OR e.account_id IS DISTINCT FROM r.account_id OR e.amount IS DISTINCT FROM r.amount
            OR e.hold_id IS DISTINCT FROM r.hold_id OR e.kind IS DISTINCT FROM 'refund'
            OR NOT EXISTS (SELECT 1 FROM entries s
                            WHERE s.bucket = t.bucket AND s.transaction_id = t.id AND s.leg = 1
                              AND s.account_id = '@revenue')`,
    },
    {
      invariant: 2,
      name: "@adjustments balances its entries, and adjustments are between it and a user account",
      query: sql`
        SELECT 'balance' AS what, s.total::text AS stored, e.total::text AS from_entries
          FROM (SELECT COALESCE(sum(settled), 0) AS total FROM accounts
                 WHERE id = '@adjustments') s,
               (SELECT COALESCE(sum(amount), 0) AS total FROM entries
                 WHERE account_id = '@adjustments') e
         WHERE s.total <> e.total
        UNION ALL
        SELECT 'entry', e.transaction_id::text, e.account_id FROM entries e
         WHERE (e.kind = 'adjustment') <> (e.account_id = '@adjustments') AND e.leg = 1`,
    },
    {
      invariant: "§2",
      name: "each promotion's allotments count its redemptions and add up to its cap",
      query: sql`
        WITH counted AS (
          SELECT promotion_code, sum(redeemed) AS redeemed, sum(allotted) AS allotted,
                 count(allotted) AS capped, count(*) AS rows
            FROM promotion_allotments GROUP BY promotion_code
        ), made AS (
          SELECT promotion_code, count(*) AS n FROM redemptions GROUP BY promotion_code
        )
        SELECT p.code, p.max_redemptions, c.allotted, c.redeemed, m.n AS redemptions
          FROM promotions p
          LEFT JOIN counted c ON c.promotion_code = p.code
          LEFT JOIN made m ON m.promotion_code = p.code
         WHERE COALESCE(c.redeemed, 0) <> COALESCE(m.n, 0)
            OR (p.max_redemptions IS NULL AND c.capped > 0)
            OR (p.max_redemptions IS NOT NULL
                AND (c.allotted IS DISTINCT FROM p.max_redemptions OR c.capped <> c.rows))`,
    },
    {
      invariant: 9,
      name: "each account's events are numbered 1, 2, 3, … without gaps, placed in that order",
      query: sql`
        SELECT account_id, sequence, position, expected, placed_before FROM (
          SELECT account_id, sequence, position,
                 row_number() OVER w AS expected, lag(position) OVER w AS placed_before,
                 lag(sequence) OVER w AS sequence_before
            FROM events
          WINDOW w AS (PARTITION BY bucket, account_id ORDER BY sequence)
        ) x
         WHERE sequence <> expected
            OR (sequence_before IS NOT NULL AND position IS NOT NULL
                AND (placed_before IS NULL OR placed_before >= position))
        UNION ALL
        SELECT NULL, NULL, position, count(*), NULL FROM events
         WHERE position IS NOT NULL GROUP BY (${homes})[bucket + 1], position HAVING count(*) > 1`,
    },
    {
      invariant: 9,
      name: "each shard's feed is past every position it gave",
      query: sql`
        WITH placed AS MATERIALIZED (
          SELECT (${homes})[bucket + 1] AS home, max(position) AS last FROM events
           WHERE position IS NOT NULL GROUP BY 1
        )
        SELECT p.home, p.last, f.position AS feed FROM placed p
          JOIN event_feeds f ON f.bucket = p.home
         WHERE f.position < p.last`,
    },
    {
      invariant: 9,
      name: "each account has exactly one event per change of its entries, holds, refunds and redemptions",
      query: sql`
        WITH changes AS (
          SELECT bucket, id AS account_id, 'account.created' AS type, 1::int8 AS n
            FROM accounts WHERE kind = 'user'
          UNION ALL
          SELECT bucket, account_id,
                 CASE kind WHEN 'credit' THEN 'account.credited' ELSE 'account.adjusted' END,
                 count(*)
            FROM entries WHERE leg = 0 AND kind IN ('credit', 'adjustment')
           GROUP BY bucket, account_id, kind
          UNION ALL
          SELECT bucket, account_id, 'hold.placed', count(*) FROM holds GROUP BY bucket, account_id
          UNION ALL
          SELECT bucket, account_id, 'hold.' || status, count(*) FROM holds
           WHERE status <> 'pending' GROUP BY bucket, account_id, status
          UNION ALL
          SELECT bucket, account_id, 'hold.refunded', count(*) FROM refunds
           GROUP BY bucket, account_id
          UNION ALL
          SELECT bucket, account_id, 'promotion.redeemed', count(*) FROM redemptions
           GROUP BY bucket, account_id
        ), written AS (
          SELECT bucket, account_id, type, count(*) AS n FROM events GROUP BY bucket, account_id, type
        )
        SELECT COALESCE(c.account_id, w.account_id) AS account_id, COALESCE(c.type, w.type) AS type,
               c.n AS changes, w.n AS events
          FROM changes c
          FULL JOIN written w ON w.bucket = c.bucket AND w.account_id = c.account_id AND w.type = c.type
         WHERE c.n IS DISTINCT FROM w.n`,
    },
    {
      invariant: 6,
      name: "no pending hold is overdue by more than the sweep interval",
      query: sql`
        SELECT id AS hold_id, account_id, expires_at FROM holds
         WHERE status = 'pending'
           AND expires_at < now() - make_interval(secs => ${options.overdueGraceMs / 1000})`,
    },
    {
      invariant: 7,
      name: "amounts and user balances are integers within [1, 2^53 - 1]",
      query: sql`
        SELECT 'entry' AS what, id::text AS id FROM entries
         WHERE amount = 0 OR abs(amount) > ${MAX_AMOUNT_SQL}
        UNION ALL
        SELECT 'hold', id::text FROM holds WHERE amount < 1 OR amount > ${MAX_AMOUNT_SQL}
        UNION ALL
        SELECT 'account', id FROM accounts WHERE kind = 'user' AND settled > ${MAX_AMOUNT_SQL}`,
    },
    {
      invariant: "§8",
      name: "every row is in its account's bucket, and a pending hold's id carries it",
      query: sql`
        SELECT 'account' AS what, id FROM accounts
         WHERE kind = 'user' AND bucket <> holdfast_bucket(id)
        UNION ALL
        SELECT 'hold', id::text FROM holds
         WHERE bucket <> holdfast_bucket(account_id)
            OR (status = 'pending' AND bucket <> ${ID_BUCKET_SQL("id")})
        UNION ALL
        SELECT 'entry', id::text FROM entries e
         WHERE e.leg = 0 AND e.bucket <> holdfast_bucket(e.account_id)
        UNION ALL
        SELECT 'redemption', account_id FROM redemptions
         WHERE bucket <> holdfast_bucket(account_id)`,
    },
  ];
}

/** The bucket that an id made by newIdIn carries: its last three hex digits. */
const ID_BUCKET_SQL = (column: string) =>
  sql.raw(`('x' || right(${column}::text, 3))::bit(12)::int`);

/**
 * Recomputes every balance from entries and holds and checks DESIGN.md section 3. Runs in one
 * REPEATABLE READ transaction so that every check sees the same snapshot.
 */
export async function verifyLedger(db: Db, options: VerifyOptions): Promise<VerifyReport> {
  const shards = await shardsOf(db);
  const homes = bucketArray(Array.from({ length: BUCKETS }, (_, bucket) => shards.home(bucket)));
  return db.transaction(
    async (tx) => {
      // Full scans of a large ledger outlast the pool's request-sized statement timeout.
      await tx.execute(sql`SET LOCAL statement_timeout = 0`);
      const results: CheckResult[] = [];
      for (const check of checks(options, homes)) {
        const rows = await tx.execute<Record<string, unknown>>(
          sql`SELECT count(*) OVER () AS violations, v.* FROM (${check.query}) v LIMIT 5`,
        );
        const violations = Number(rows[0]?.violations ?? 0);
        const examples = rows.map(({ violations: _, ...rest }) => rest);
        results.push({ invariant: check.invariant, name: check.name, violations, examples });
      }
      const [totals] = await tx.execute<VerifyReport["totals"]>(sql`
        SELECT (SELECT count(DISTINCT id) FROM accounts)::int AS accounts,
               (SELECT count(*) FROM ledger_transactions)::int AS transactions,
               (SELECT count(*) FROM entries)::int AS entries,
               (SELECT count(*) FROM holds)::int AS holds`);
      return { ok: results.every((r) => r.violations === 0), checks: results, totals: totals! };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}

export function formatReport(report: VerifyReport): string {
  const lines = [
    `holdfast verify: ${report.totals.accounts} accounts, ${report.totals.transactions} transactions, ${report.totals.entries} entries, ${report.totals.holds} holds`,
  ];
  for (const c of report.checks) {
    const mark = c.violations === 0 ? "ok  " : "FAIL";
    lines.push(
      `  ${mark} [${c.invariant}] ${c.name}${c.violations ? `: ${c.violations} violation(s)` : ""}`,
    );
    for (const example of c.examples)
      lines.push(`         ${JSON.stringify(example, bigintReplacer)}`);
  }
  lines.push(report.ok ? "all invariants hold" : "INVARIANTS VIOLATED");
  return lines.join("\n");
}

const bigintReplacer = (_: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);
