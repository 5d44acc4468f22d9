import { sql } from "drizzle-orm";
import type { Database } from "../../src/db/client.ts";
import { ADMIN } from "../helpers/app.ts";
import type { FulfilmentService } from "./fulfilment.ts";
import type { ChaosHttp } from "./http.ts";
import type { Model, PromotionSpec } from "./model.ts";
import type { Rng } from "./random.ts";

const SYSTEM_ACCOUNTS = ["@issuance", "@revenue", "@promotions", "@adjustments"] as const;

type HoldRow = {
  id: string;
  account_id: string;
  amount: number;
  status: string;
  settled_amount: number | null;
  refunded_amount: number;
  order_id: string | null;
  reason: string | null;
  transactions: number;
};

export interface FinalTotals {
  holds: Record<string, number>;
  credited: number;
  promotionCredited: number;
  settled: number;
  refunded: number;
  adjusted: number;
  users: number;
  system: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until no hold is pending: expiry and the sweep resolve whatever is left. */
export async function waitForHoldsResolved(db: Database, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = await db
      .execute<{ id: string; expires_at: string }>(
        sql`SELECT id, expires_at::text FROM holds WHERE status = 'pending' ORDER BY expires_at`,
      )
      .catch(() => undefined);
    if (pending && pending.length === 0) return [];
    if (Date.now() > deadline)
      return (pending ?? []).map((h) => `hold ${h.id} still pending (expires ${h.expires_at})`);
    await sleep(250);
  }
}

/**
 * The end-of-run checks: the ledger against the client-side model built only from definite
 * answers, and each hold and idempotency key against what the database holds. Returns the
 * problems found (an empty list: all good) and the totals for the summary.
 */
export async function checkFinalState(options: {
  db: Database;
  http: ChaosHttp;
  rng: Rng;
  model: Model;
  accounts: string[];
  promotions: PromotionSpec[];
  fulfilment: FulfilmentService;
}): Promise<{ problems: string[]; totals: FinalTotals }> {
  const { db, http, rng, model, fulfilment } = options;
  const problems: string[] = [];
  const fail = (message: string) => {
    if (problems.length < 200) problems.push(message);
  };

  // Holds: every one the database has is one the model got a 201 for, and vice versa.
  const holdRows = await db.execute<HoldRow>(sql`
    SELECT h.id, h.account_id, h.amount, h.status, h.settled_amount, h.refunded_amount, h.order_id,
           h.reason,
           (SELECT count(DISTINCT e.transaction_id)::int FROM entries e
             WHERE e.hold_id = h.id AND e.bucket = h.bucket AND e.kind = 'purchase') AS transactions
      FROM holds h`);
  const byId = new Map(holdRows.map((h) => [h.id, h]));
  const byOrder = new Map<string, HoldRow[]>();
  for (const h of holdRows)
    byOrder.set(h.order_id ?? "", [...(byOrder.get(h.order_id ?? "") ?? []), h]);
  const statusCounts: Record<string, number> = {};
  for (const h of holdRows) {
    statusCounts[h.status] = (statusCounts[h.status] ?? 0) + 1;
    if (!model.holds.has(h.id))
      fail(`hold ${h.id} (order ${h.order_id}) exists but no purchase got a 201 for it`);
    if (h.status === "pending") fail(`hold ${h.id} is still pending`);
    if (h.status === "settled" && h.transactions !== 1)
      fail(`settled hold ${h.id} has ${h.transactions} purchase transactions`);
    if (h.status !== "settled" && h.transactions !== 0)
      fail(`${h.status} hold ${h.id} has ${h.transactions} purchase transactions`);
  }
  for (const hold of model.holds.values())
    if (!byId.has(hold.id)) fail(`hold ${hold.id} got a 201 but is not in the database`);

  // Each resolution is explained by a request someone made: a settle at one of the amounts a
  // client or the fulfilment service asked for, a release with one of their reasons, or expiry.
  for (const h of holdRows) {
    if (h.status === "settled") {
      const asked = [
        ...(fulfilment.settledBy.get(h.id) ?? []),
        ...(model.settleRequests.get(h.id) ?? []),
      ].map((a) => a ?? h.amount);
      if (!asked.includes(h.settled_amount!))
        fail(
          `hold ${h.id} settled ${h.settled_amount} of ${h.amount}; asked: ${JSON.stringify(asked)}`,
        );
    } else if (h.status === "released") {
      const reasons = [
        ...(fulfilment.refusedWith.get(h.id) ?? []),
        ...(model.releaseRequests.get(h.id) ?? []),
      ];
      if (!reasons.includes(h.reason ?? ""))
        fail(`hold ${h.id} released with reason ${h.reason}; asked: ${JSON.stringify(reasons)}`);
    } else if (h.status === "expired" && h.reason !== "expired") {
      fail(`hold ${h.id} expired with reason ${h.reason}`);
    }
  }

  // What each settle or release answer said is what stayed.
  for (const r of model.resolutions) {
    const h = byId.get(r.holdId);
    if (!h) continue;
    if (r.status === 200) {
      const want = r.verb === "settle" ? "settled" : "released";
      if (r.hold?.status !== want || h.status !== want)
        fail(`${r.verb} of ${r.holdId} answered 200 with ${r.hold?.status}, final ${h.status}`);
      if (r.verb === "settle" && r.hold?.settledAmount !== h.settled_amount)
        fail(`settle of ${r.holdId} answered ${r.hold?.settledAmount}, final ${h.settled_amount}`);
    } else if (r.status === 409 && r.code === "hold_not_pending") {
      const excluded = r.verb === "settle" ? "settled" : "released";
      if (h.status === excluded || h.status === "pending")
        fail(`${r.verb} of ${r.holdId} answered hold_not_pending, final ${h.status}`);
    } else if (r.status === 422 && r.code === "amount_exceeds_hold") {
      if (r.verb !== "settle" || !(r.requestedAmount! > h.amount))
        fail(`${r.verb} of ${r.holdId} answered amount_exceeds_hold for ${r.requestedAmount}`);
    } else {
      fail(`${r.verb} of ${r.holdId} answered ${r.status} ${r.code}`);
    }
  }
  for (const [id, text] of model.terminalSeen) {
    const seen = JSON.parse(text);
    const h = byId.get(id);
    if (h && (seen.status !== h.status || seen.settledAmount !== h.settled_amount))
      fail(
        `hold ${id} was read as ${seen.status}/${seen.settledAmount}, final ${h.status}/${h.settled_amount}`,
      );
  }

  // Idempotency keys: a definite 2xx produced exactly one effect, a 4xx none.
  const credits = await db.execute<{ key: string; id: string }>(sql`
    SELECT metadata->>'chaosKey' AS key, id FROM ledger_transactions WHERE kind = 'credit'`);
  const creditsByKey = new Map<string, string[]>();
  for (const c of credits) creditsByKey.set(c.key, [...(creditsByKey.get(c.key) ?? []), c.id]);
  const redemptionRows = await db.execute<{
    promotion_code: string;
    account_id: string;
    credited: number;
    transaction_id: string | null;
  }>(sql`SELECT promotion_code, account_id, credited, transaction_id FROM redemptions`);
  const redemptionsByPair = new Map(
    redemptionRows.map((r) => [`${r.promotion_code}/${r.account_id}`, r]),
  );
  type RefundRow = {
    key: string;
    id: string;
    hold_id: string;
    amount: number;
    transaction_id: string;
  };
  const refundRows = await db.execute<RefundRow>(
    sql`SELECT metadata->>'chaosKey' AS key, id, hold_id, amount, transaction_id FROM refunds`,
  );
  const refundsByKey = new Map<string, RefundRow[]>();
  for (const r of refundRows) refundsByKey.set(r.key, [...(refundsByKey.get(r.key) ?? []), r]);
  const adjustments = await db.execute<{ key: string; id: string }>(sql`
    SELECT metadata->>'chaosKey' AS key, id FROM ledger_transactions WHERE kind = 'adjustment'`);
  const adjustmentsByKey = new Map<string, string[]>();
  for (const a of adjustments)
    adjustmentsByKey.set(a.key, [...(adjustmentsByKey.get(a.key) ?? []), a.id]);
  const redeemedPairs = new Map<string, string>();
  const expected = new Map<string, number>(options.accounts.map((a) => [a, 0]));
  let credited = 0;
  let promotionCredited = 0;
  let refunded = 0;
  let adjusted = 0;
  for (const op of model.ops) {
    const a = op.answer;
    if (!a) {
      fail(`${op.kind} ${op.key} never got a definite answer`);
      continue;
    }
    const ok = a.status >= 200 && a.status < 300;
    if (op.kind === "purchase") {
      const found = byOrder.get(op.key) ?? [];
      if (ok && (found.length !== 1 || found[0]!.id !== a.json.hold.id))
        fail(
          `purchase ${op.key} answered 201 (${a.json.hold.id}); holds: ${found.map((h) => h.id)}`,
        );
      if (!ok && found.length !== 0)
        fail(`purchase ${op.key} answered ${a.status} but made ${found.length} hold(s)`);
    } else if (op.kind === "credit") {
      const found = creditsByKey.get(op.key) ?? [];
      if (ok && (found.length !== 1 || found[0] !== a.json.transactionId))
        fail(`credit ${op.key} answered 201 (${a.json.transactionId}); transactions: ${found}`);
      if (!ok && found.length !== 0)
        fail(`credit ${op.key} answered ${a.status} but posted ${found.length} transaction(s)`);
      if (ok) {
        const amount = (op.request.body as { amount: number }).amount;
        expected.set(op.accountId, expected.get(op.accountId)! + amount);
        credited += amount;
      }
    } else if (op.kind === "refund") {
      const found = refundsByKey.get(op.key) ?? [];
      if (ok) {
        const r = a.json.refund;
        const row = found[0];
        if (
          found.length !== 1 ||
          row!.id !== r.id ||
          row!.amount !== r.amount ||
          row!.transaction_id !== r.transactionId
        )
          fail(
            `refund ${op.key} answered 201 (${a.text.slice(0, 300)}); rows: ${JSON.stringify(found)}`,
          );
        const hold = model.holds.get(r.holdId);
        if (hold) expected.set(hold.accountId, expected.get(hold.accountId)! + r.amount);
        refunded += r.amount;
      } else if (found.length !== 0) {
        fail(`refund ${op.key} answered ${a.status} but made ${found.length} refund(s)`);
      }
    } else if (op.kind === "adjust") {
      const found = adjustmentsByKey.get(op.key) ?? [];
      if (ok && (found.length !== 1 || found[0] !== a.json.adjustment.transactionId))
        fail(`adjustment ${op.key} answered 201 (${a.text.slice(0, 300)}); transactions: ${found}`);
      if (!ok && found.length !== 0)
        fail(`adjustment ${op.key} answered ${a.status} but posted ${found.length} transaction(s)`);
      if (ok) {
        const amount = (op.request.body as { amount: number }).amount;
        expected.set(op.accountId, expected.get(op.accountId)! + amount);
        adjusted += amount;
      }
    } else if (op.kind === "redeem") {
      const code = op.request.path.split("/")[3]!;
      const pair = `${code}/${op.accountId}`;
      const row = redemptionsByPair.get(pair);
      if (ok) {
        const r = a.json.redemption;
        if (redeemedPairs.has(pair))
          fail(`${pair} redeemed twice: ${redeemedPairs.get(pair)} and ${op.key}`);
        redeemedPairs.set(pair, op.key);
        if (!row || row.credited !== r.credited || row.transaction_id !== r.transactionId)
          fail(`redemption ${op.key} answered ${a.text.slice(0, 300)}; row ${JSON.stringify(row)}`);
        const multiplier = options.promotions.find((p) => p.code === code)!.multiplier;
        if (r.credited !== r.basis * (multiplier - 1))
          fail(
            `redemption ${op.key} credited ${r.credited} on a basis of ${r.basis} at ×${multiplier}`,
          );
        expected.set(op.accountId, expected.get(op.accountId)! + r.credited);
        promotionCredited += r.credited;
      }
    }
  }
  const creditKeys = new Set(
    model.ops.filter((o) => o.kind === "credit" && o.answer?.status === 201).map((o) => o.key),
  );
  for (const [key] of creditsByKey)
    if (!creditKeys.has(key)) fail(`credit transaction with key ${key} that no 201 reported`);
  const answered = (kind: string) =>
    new Set(
      model.ops
        .filter((o) => o.kind === kind && o.answer && o.answer.status < 300)
        .map((o) => o.key),
    );
  const refundKeys = answered("refund");
  for (const [key] of refundsByKey)
    if (!refundKeys.has(key)) fail(`refund with key ${key} that no 201 reported`);
  const adjustKeys = answered("adjust");
  for (const [key] of adjustmentsByKey)
    if (!adjustKeys.has(key)) fail(`adjustment with key ${key} that no 201 reported`);
  for (const h of holdRows) {
    const sum = refundRows.filter((r) => r.hold_id === h.id).reduce((n, r) => n + r.amount, 0);
    if (sum !== h.refunded_amount || sum > (h.settled_amount ?? 0))
      fail(
        `hold ${h.id}: refunds sum to ${sum}, refundedAmount ${h.refunded_amount}, settled ${h.settled_amount}`,
      );
  }
  for (const pair of redemptionsByPair.keys())
    if (!redeemedPairs.has(pair)) fail(`redemption ${pair} that no 201 reported`);
  for (const p of options.promotions) {
    const n = [...redeemedPairs.keys()].filter((k) => k.startsWith(`${p.code}/`)).length;
    if (p.maxRedemptions !== null && n > p.maxRedemptions)
      fail(`promotion ${p.code} redeemed ${n} times, cap ${p.maxRedemptions}`);
    const read = await http.send(
      { method: "GET", path: `/v1/promotions/${p.code}`, token: ADMIN },
      rng,
      30_000,
    );
    if (read?.json?.redemptions !== n)
      fail(`promotion ${p.code} reports ${read?.json?.redemptions} redemptions, the model ${n}`);
  }

  // Balances, read through the API: credits + promotion credits − what each hold settled.
  let settled = 0;
  for (const hold of model.holds.values()) {
    const h = byId.get(hold.id);
    if (h?.status !== "settled") continue;
    expected.set(hold.accountId, expected.get(hold.accountId)! - h.settled_amount!);
    settled += h.settled_amount!;
  }
  let users = 0;
  for (const [id, want] of expected) {
    const read = await http.send(
      { method: "GET", path: `/v1/accounts/${id}`, token: ADMIN },
      rng,
      30_000,
    );
    const account = read?.json;
    users += account?.settled ?? 0;
    if (account?.settled !== want || account?.held !== 0 || account?.available !== want)
      fail(`account ${id}: ${read?.text}; the model says settled ${want}, held 0`);
  }
  const system: Record<string, number> = {};
  for (const id of SYSTEM_ACCOUNTS) {
    const read = await http.send(
      { method: "GET", path: `/v1/accounts/${encodeURIComponent(id)}`, token: ADMIN },
      rng,
      30_000,
    );
    system[id] = read?.json?.settled;
  }
  if (system["@issuance"] !== -credited)
    fail(`@issuance is ${system["@issuance"]}, the model −${credited}`);
  if (system["@promotions"] !== -promotionCredited)
    fail(`@promotions is ${system["@promotions"]}, the model −${promotionCredited}`);
  if (system["@revenue"] !== settled - refunded)
    fail(`@revenue is ${system["@revenue"]}, the model ${settled} settled − ${refunded} refunded`);
  if (system["@adjustments"] !== -adjusted)
    fail(`@adjustments is ${system["@adjustments"]}, the model −${adjusted}`);
  const total = users + Object.values(system).reduce((s, v) => s + (v ?? 0), 0);
  if (total !== 0) fail(`settled balances sum to ${total}, not 0`);

  return {
    problems,
    totals: {
      holds: statusCounts,
      credited,
      promotionCredited,
      settled,
      refunded,
      adjusted,
      users,
      system,
    },
  };
}
