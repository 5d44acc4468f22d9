import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { MAX_AMOUNT_SQL } from "../db/schema/index.ts";
import { type Account, type AccountRow, toAccount } from "./account.ts";
import { bucketOf, newIdIn } from "./ids.ts";
import { post } from "./post-transaction.ts";
import type { RedeemInput } from "./promotion.ts";
import { explainRefusal } from "./promotion-refusal.ts";
import { toIso } from "./rows.ts";

export interface Redemption {
  code: string;
  accountId: string;
  /**
   * The settled balance the multiplier was applied to: the account's settled balance read
   * under its row lock, at the redemption's position in the account's sequence (pending holds
   * neither reduce it nor are touched). The contract's "settled balance doubled" names this
   * balance, the one that gets doubled; after the redemption settled = basis × multiplier.
   */
  basis: number;
  /** basis × (multiplier − 1), credited from `@promotions`. */
  credited: number;
  /** The promotion's ledger transaction; null when basis was 0 (nothing to post). */
  transactionId: string | null;
  createdAt: string;
}

export interface RedeemResult {
  redemption: Redemption;
  account: Account;
}

type RedemptionRow = {
  promotion_code: string;
  account_id: string;
  basis: number;
  credited: number;
  transaction_id: string | null;
  created_at: string;
};

const REDEMPTION_COLUMNS = sql.raw(
  "promotion_code, account_id, basis, credited, transaction_id, created_at",
);

const toRedemption = (row: RedemptionRow): Redemption => ({
  code: row.promotion_code,
  accountId: row.account_id,
  basis: row.basis,
  credited: row.credited,
  transactionId: row.transaction_id,
  createdAt: toIso(row.created_at),
});

/**
 * Locks the promotion row if it is redeemable at this transaction's now() (inside its
 * window, below its cap), then the account row. The EXISTS is an init plan, so the account is
 * only locked once the promotion is: every redemption takes promotion → account, nothing else
 * locks a promotion, and nothing that holds an account waits for a promotion, so redemptions,
 * purchases, settles and credits cannot form a lock cycle. This order also keeps a queue of
 * redemptions on a popular promotion from holding their accounts: purchases and settles never
 * wait behind it. FOR NO KEY UPDATE re-reads the latest committed row after a wait (READ
 * COMMITTED), so the cap and the settled balance are both read under their locks.
 */
function locks(input: RedeemInput, accountFilter: SQL): SQL {
  return sql`
    promo AS MATERIALIZED (
      SELECT code, multiplier FROM promotions
       WHERE code = ${input.code}
         AND (starts_at IS NULL OR starts_at <= now()) AND (ends_at IS NULL OR now() < ends_at)
         AND (max_redemptions IS NULL OR redemptions < max_redemptions)
         FOR NO KEY UPDATE
    ),
    locked_account AS MATERIALIZED (
      SELECT id, settled, held, metadata, created_at FROM accounts
       WHERE bucket = ${bucketOf(input.accountId)} AND id = ${input.accountId} AND kind = 'user'
         AND ${accountFilter}
         AND EXISTS (SELECT 1 FROM promo)
         FOR NO KEY UPDATE
    )`;
}

/**
 * Counts a redemption that was recorded. The promotion row is already locked and checked
 * below its cap; the condition is repeated, and the CHECK on the table backs it up.
 */
const COUNT = sql`
    counted AS (
      UPDATE promotions SET redemptions = promotions.redemptions + 1
        FROM redeemed
       WHERE promotions.code = redeemed.promotion_code
         AND (promotions.max_redemptions IS NULL OR promotions.redemptions < promotions.max_redemptions)
      RETURNING promotions.code
    )`;

/**
 * The source of the posting statement: the whole redemption in one statement. The row in
 * `redemptions` is inserted only if the account has settled coins and the credit keeps it
 * within 2^53 − 1; ON CONFLICT DO NOTHING against the primary key makes a second redemption
 * by the account (one that waited on the account lock) insert, count and post nothing.
 * The redemption's transaction_id references the ledger transaction the core inserts later in
 * the statement; foreign keys are checked at the end of the statement.
 */
function creditSource(input: RedeemInput, transactionId: string): SQL {
  return sql`${locks(input, sql`true`)},
    redeemed AS (
      INSERT INTO redemptions (bucket, promotion_code, account_id, basis, credited, transaction_id)
      SELECT ${bucketOf(input.accountId)}::int, promo.code, locked_account.id, locked_account.settled,
             locked_account.settled * (promo.multiplier - 1), ${transactionId}::uuid
        FROM locked_account, promo
       WHERE locked_account.settled > 0
         AND locked_account.settled * promo.multiplier <= ${MAX_AMOUNT_SQL}
      ON CONFLICT (bucket, promotion_code, account_id) DO NOTHING
      RETURNING promotion_code, account_id, credited
    ),
    ${COUNT},
    src AS (
      SELECT redeemed.account_id, redeemed.credited AS delta, 0::int8 AS release_held,
             NULL::uuid AS hold_id
        FROM redeemed, counted
    )`;
}

type ZeroRow = RedemptionRow & {
  id: string;
  settled: number;
  held: number;
  metadata: AccountRow["metadata"];
  account_created_at: string;
};

/**
 * A redemption by an account with nothing settled: a ledger transaction cannot have zero
 * entries, so the redemption is recorded (and counted) with credited 0 and no transaction.
 * It is still a redemption at one position in the account's sequence, consistent with a
 * serial order, and it uses up the account's one redemption of the promotion.
 */
async function redeemZero(db: Db, input: RedeemInput): Promise<RedeemResult | undefined> {
  const rows = await db.execute<ZeroRow>(sql`
    WITH ${locks(input, sql`settled = 0`)},
    redeemed AS (
      INSERT INTO redemptions (bucket, promotion_code, account_id, basis, credited, transaction_id)
      SELECT ${bucketOf(input.accountId)}::int, promo.code, locked_account.id, 0, 0, NULL FROM locked_account, promo
      ON CONFLICT (bucket, promotion_code, account_id) DO NOTHING
      RETURNING ${REDEMPTION_COLUMNS}
    ),
    ${COUNT}
    SELECT r.*, a.id, a.settled, a.held, a.metadata, a.created_at AS account_created_at
      FROM redeemed r, counted, locked_account a`);
  const row = rows[0];
  if (!row) return undefined;
  return {
    redemption: toRedemption(row),
    account: toAccount({ ...row, created_at: row.account_created_at }),
  };
}

/** Each retry follows a concurrent commit that changed the account between two statements. */
const MAX_ATTEMPTS = 5;

/**
 * Redeems a promotion on an account: credits settled × (multiplier − 1) from `@promotions`,
 * with settled read under the account's row lock by the statement that posts the credit, so
 * the credit is decided at one position in the account's sequence and is exactly what a
 * serial order would give. Pending holds are not touched: they settle or release against the
 * multiplied balance afterwards.
 *
 * Everything runs in one transaction (a savepoint when `db` is a transaction): a refusal
 * thrown after a statement that locked rows leaves nothing written.
 */
export async function redeemPromotion(db: Db, input: RedeemInput): Promise<RedeemResult> {
  const bucket = bucketOf(input.accountId);
  return db.transaction(async (tx) => {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const transactionId = newIdIn(bucket);
      const posted = await post(tx, creditSource(input, transactionId), {
        bucket,
        transactionId,
        kind: "promotion",
        counterparty: "@promotions",
        reason: `promotion ${input.code}`,
        metadata: { promotion: input.code },
      });
      if (posted) {
        const [row] = await tx.execute<RedemptionRow>(sql`
          SELECT ${REDEMPTION_COLUMNS} FROM redemptions
           WHERE bucket = ${bucket} AND promotion_code = ${input.code}
             AND account_id = ${input.accountId}`);
        return { redemption: toRedemption(row!), account: toAccount(posted) };
      }
      if ((await explainRefusal(tx, input)) === "zero") {
        const redeemed = await redeemZero(tx, input);
        if (redeemed) return redeemed;
      }
    }
    throw new Error(
      `redeeming ${input.code} on ${input.accountId}: the account kept changing; try again`,
    );
  });
}
