import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";

/** What an operator watches first: the pending holds, their coins and their deadlines. */
export interface HoldStats {
  pending: number;
  /** A sum over every account's holds, which may pass 2^53 − 1. */
  coinsHeld: bigint;
  /** Pending past expires_at: the expire job and the sweep are both behind. */
  overdue: number;
  expiringIn5m: number;
  expiringIn60m: number;
}

type Row = {
  pending: number;
  coins_held: string;
  overdue: number;
  expiring_5m: number;
  expiring_60m: number;
};

/**
 * The pending holds' figures, by the database's clock, in one scan of the pending holds (the
 * partial index on expires_at). The holds panel and the Prometheus gauges both read this, so
 * "overdue" means one thing everywhere.
 */
export async function holdStats(db: Db): Promise<HoldStats> {
  const rows = await db.execute<Row>(sql`
    SELECT count(*)::int AS pending,
           coalesce(sum(amount), 0)::text AS coins_held,
           count(*) FILTER (WHERE expires_at <= now())::int AS overdue,
           count(*) FILTER (WHERE expires_at > now()
                              AND expires_at <= now() + interval '5 minutes')::int AS expiring_5m,
           count(*) FILTER (WHERE expires_at > now()
                              AND expires_at <= now() + interval '60 minutes')::int AS expiring_60m
      FROM holds
     WHERE status = 'pending'`);
  const row = rows[0]!;
  return {
    pending: row.pending,
    coinsHeld: BigInt(row.coins_held),
    overdue: row.overdue,
    expiringIn5m: row.expiring_5m,
    expiringIn60m: row.expiring_60m,
  };
}
