import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { MAX_AMOUNT_SQL } from "../db/schema/index.ts";
import { DomainError } from "./errors.ts";
import { bucketOf } from "./ids.ts";
import type { RedeemInput } from "./promotion.ts";
import { toIsoOrNull } from "./rows.ts";

type StateRow = {
  promotion: string | null;
  max_redemptions: number | null;
  redemptions: number | null;
  starts_at: string | null;
  ends_at: string | null;
  not_started: boolean | null;
  ended: boolean | null;
  account: string | null;
  settled: number | null;
  overflows: boolean | null;
  redeemed: boolean;
};

/**
 * Why the redemption statement wrote nothing, read after it. It throws the refusal; a
 * redemption that is allowed but was not applied is either a zero basis or a state that
 * changed between the two statements (then the caller tries again).
 */
export async function explainRefusal(db: Db, input: RedeemInput): Promise<"zero" | "changed"> {
  const bucket = bucketOf(input.accountId);
  const [s] = await db.execute<StateRow>(sql`
    SELECT p.code AS promotion, p.max_redemptions, p.redemptions, p.starts_at, p.ends_at,
           p.starts_at IS NOT NULL AND now() < p.starts_at AS not_started,
           p.ends_at IS NOT NULL AND now() >= p.ends_at AS ended,
           a.id AS account, a.settled, a.settled * p.multiplier > ${MAX_AMOUNT_SQL} AS overflows,
           EXISTS (SELECT 1 FROM redemptions
                    WHERE bucket = ${bucket} AND promotion_code = ${input.code} AND account_id = ${input.accountId}) AS redeemed
      FROM (SELECT 1) one
      LEFT JOIN promotions p ON p.code = ${input.code}
      LEFT JOIN accounts a ON a.bucket = ${bucket} AND a.id = ${input.accountId} AND a.kind = 'user'`);
  const { code, accountId } = input;
  if (!s?.promotion)
    throw new DomainError("promotion_not_found", `promotion ${code} does not exist`);
  if (!s.account) throw new DomainError("account_not_found", `account ${accountId} does not exist`);
  if (s.redeemed) {
    throw new DomainError(
      "promotion_already_redeemed",
      `account ${accountId} has already redeemed promotion ${code}`,
    );
  }
  if (s.not_started) {
    const from = toIsoOrNull(s.starts_at);
    throw new DomainError("promotion_inactive", `promotion ${code} starts at ${from}`);
  }
  if (s.ended) {
    const until = toIsoOrNull(s.ends_at);
    throw new DomainError("promotion_inactive", `promotion ${code} ended at ${until}`);
  }
  if (s.max_redemptions !== null && s.redemptions! >= s.max_redemptions) {
    throw new DomainError(
      "promotion_inactive",
      `promotion ${code} has reached its ${s.max_redemptions} redemption(s)`,
    );
  }
  if (s.settled === 0) return "zero";
  if (s.overflows) {
    throw new DomainError(
      "balance_limit_exceeded",
      `redeeming ${code} would take account ${accountId} past 2^53 - 1 coins`,
    );
  }
  return "changed";
}
