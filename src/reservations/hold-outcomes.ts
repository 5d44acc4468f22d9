import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";

/** How holds ended within one window. */
export interface OutcomeCounts {
  settled: number;
  expired: number;
  /** Released holds by their reason; "(none)" for a release without one. */
  releasedByReason: Record<string, number>;
}

export interface HoldOutcomes {
  lastHour: OutcomeCounts;
  lastDay: OutcomeCounts;
}

export const NO_REASON = "(none)";

type Row = {
  status: "settled" | "released" | "expired";
  reason: string | null;
  hour: number;
  day: number;
};

const empty = (): OutcomeCounts => ({ settled: 0, expired: 0, releasedByReason: {} });

/**
 * Settles, releases (by reason) and expiries over the last hour and the last day, by the
 * database's clock. There is no index on resolved_at, so this scans the holds table: fine for
 * an operator's page, not for a scrape every few seconds (the gauges do not read it).
 */
export async function holdOutcomes(db: Db): Promise<HoldOutcomes> {
  const rows = await db.execute<Row>(sql`
    SELECT status, reason,
           count(*) FILTER (WHERE resolved_at > now() - interval '1 hour')::int AS hour,
           count(*)::int AS day
      FROM holds
     WHERE status <> 'pending' AND resolved_at > now() - interval '1 day'
     GROUP BY status, reason`);
  const outcomes = { lastHour: empty(), lastDay: empty() };
  for (const row of rows) {
    for (const [window, n] of [
      [outcomes.lastHour, row.hour],
      [outcomes.lastDay, row.day],
    ] as const) {
      if (n === 0) continue;
      if (row.status === "released") {
        const reason = row.reason ?? NO_REASON;
        window.releasedByReason[reason] = (window.releasedByReason[reason] ?? 0) + n;
      } else window[row.status] += n;
    }
  }
  return outcomes;
}
