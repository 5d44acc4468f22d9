import { ADMIN, SERVICE } from "../helpers/app.ts";
import type { Answer, ChaosHttp, Request } from "./http.ts";
import type { HoldRecord, KeyedKind, KeyedOp, Model, PromotionSpec } from "./model.ts";
import type { Rng } from "./random.ts";

export interface Workload {
  seed: number;
  http: ChaosHttp;
  model: Model;
  accounts: string[];
  promotions: PromotionSpec[];
  /** How long one operation retries before it is left to the drain. */
  opRetryMs: number;
}

const WEIGHTS = {
  purchase: 28,
  settle: 10,
  release: 6,
  replay: 8,
  reuse: 2,
  credit: 8,
  redeem: 5,
  refund: 5,
  adjust: 3,
  readAccount: 16,
  readEntries: 10,
  readHold: 8,
  readPromotion: 2,
};

type OpKind = keyof typeof WEIGHTS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const ENTRIES_PAGE = 200;

/** Why a first page of a user account's entries is not whole, or undefined when it is. */
// biome-ignore lint/suspicious/noExplicitAny: a page as the API renders it
export function entryPageProblem(page: any): string | undefined {
  const data: unknown[] = page?.data;
  if (!Array.isArray(data) || data.length === 0) return "no entries";
  const top = (data[0] as { seq?: unknown })?.seq;
  if (!Number.isSafeInteger(top)) return "no seq on the newest entry";
  const expected = Math.min(ENTRIES_PAGE, top as number);
  if (data.length !== expected) return `${data.length} entries where seq ${top} makes ${expected}`;
  for (const [i, entry] of data.entries()) {
    if ((entry as { seq?: unknown })?.seq !== (top as number) - i) return `entry ${i} out of order`;
  }
  if ((page.nextCursor === null) !== (expected === top)) return "nextCursor wrong";
  return undefined;
}

/** Sends a keyed request and records it with its first definite answer. */
async function keyed(
  w: Workload,
  rng: Rng,
  op: Omit<KeyedOp, "answer">,
  budgetMs = w.opRetryMs,
): Promise<KeyedOp> {
  const record: KeyedOp = { ...op };
  w.model.ops.push(record);
  const answer = await w.http.send(op.request, rng, budgetMs);
  if (answer) record.answer = answer;
  return record;
}

/** Records what a definite answer to a keyed request says; shared by the run and the drain. */
export function absorb(w: Workload, op: KeyedOp, where: string) {
  const { model } = w;
  const a = op.answer;
  if (!a) return;
  model.seeAccount(a.json?.account, where);
  if (op.kind === "purchase" && a.status === 201) {
    const hold = a.json.hold;
    const body = op.request.body as { accountId: string; amount: number; orderId: string };
    if (
      hold.status !== "pending" ||
      hold.orderId !== body.orderId ||
      hold.accountId !== body.accountId ||
      hold.amount !== body.amount
    )
      model.violations.push(`${where}: purchase ${op.key} answered ${a.text.slice(0, 400)}`);
    model.holds.set(hold.id, {
      id: hold.id,
      accountId: body.accountId,
      amount: body.amount,
      orderId: body.orderId,
      client: op.client,
    });
  }
}

/** One chaos client: draws operations from its own seeded stream while `running()`. */
export async function runClient(w: Workload, client: number, rng: Rng, running: () => boolean) {
  const { model, http, seed } = w;
  const own: HoldRecord[] = [];
  const mine: KeyedOp[] = [];
  let n = 0;
  const nextKey = (prefix: string) => `${prefix}-${seed}-${client}-${++n}`;

  const purchase = async () => {
    const key = nextKey("p");
    const body = {
      accountId: rng.pick(w.accounts),
      amount: rng.int(1, 80),
      orderId: key,
      expiresInSeconds: rng.int(2, 10),
    };
    const request: Request = { method: "POST", path: "/v1/purchases", token: SERVICE, body, key };
    const op = { kind: "purchase" as const, key, client, accountId: body.accountId, request };
    let record: KeyedOp;
    if (rng.chance(0.1)) {
      // A double click: the same request twice at once, to two instances.
      const [first, b] = await Promise.all([
        keyed(w, rng.fork(`${key}-a`), op),
        http.send(request, rng.fork(`${key}-b`), w.opRetryMs),
      ]);
      record = first;
      const a = record.answer;
      if (a && b && (a.status !== b.status || a.text !== b.text))
        model.violations.push(
          `double click ${key}: ${a.status} ${a.text.slice(0, 300)} vs ${b.status} ${b.text.slice(0, 300)}`,
        );
      if (!a && b) record.answer = b;
      model.count("purchase-double", b);
    } else {
      record = await keyed(w, rng, op);
    }
    const answer = record.answer;
    model.count("purchase", answer);
    mine.push(record);
    absorb(w, record, `purchase ${key}`);
    if (answer?.status === 201) own.push(model.holds.get(answer.json.hold.id)!);
  };

  const resolve = async (verb: "settle" | "release") => {
    if (own.length === 0) return purchase();
    const index = rng.int(0, own.length - 1);
    const hold = own[index]!;
    let body: Record<string, unknown> = {};
    let requestedAmount: number | undefined;
    if (verb === "settle") {
      const r = rng.next();
      if (r < 0.35) requestedAmount = rng.int(1, hold.amount);
      else if (r < 0.4) requestedAmount = hold.amount + rng.int(1, 5);
      if (requestedAmount !== undefined) body = { amount: requestedAmount };
      const list = model.settleRequests.get(hold.id) ?? [];
      model.settleRequests.set(hold.id, [...list, requestedAmount]);
    } else {
      const reason = `client ${client} released ${hold.orderId}`;
      body = { reason };
      model.releaseRequests.set(hold.id, [...(model.releaseRequests.get(hold.id) ?? []), reason]);
    }
    const request: Request = {
      method: "POST",
      path: `/v1/holds/${hold.id}/${verb}`,
      token: SERVICE,
      body,
    };
    let answer: Answer | undefined;
    if (rng.chance(0.3)) {
      request.key = nextKey(verb[0]!);
      const record = await keyed(w, rng, {
        kind: verb as KeyedKind,
        key: request.key,
        client,
        accountId: hold.accountId,
        request,
      });
      mine.push(record);
      answer = record.answer;
    } else {
      // Without a key a retry is safe anyway: repeating a settle or a release returns the hold.
      answer = await http.send(request, rng, w.opRetryMs);
    }
    model.count(verb, answer);
    if (!answer) return;
    model.seeHold(answer.json, `${verb} ${hold.id}`);
    model.resolutions.push({
      verb,
      holdId: hold.id,
      status: answer.status,
      code: answer.json?.code,
      hold: answer.status === 200 ? answer.json : undefined,
      requestedAmount,
    });
    if (answer.status === 200 || answer.status === 409) own.splice(index, 1);
  };

  const replay = async () => {
    const done = mine.filter((o) => o.answer);
    if (done.length === 0) return purchase();
    const op = rng.pick(done);
    const again = await http.send(op.request, rng, w.opRetryMs);
    model.count(`replay-${op.kind}`, again);
    if (!again) return;
    if (again.status !== op.answer!.status || again.text !== op.answer!.text || !again.replayed)
      model.violations.push(
        `replay of ${op.key}: first ${op.answer!.status} ${op.answer!.text.slice(0, 300)}, ` +
          `replay ${again.status} (replayed: ${again.replayed}) ${again.text.slice(0, 300)}`,
      );
  };

  const reuse = async () => {
    const done = mine.filter((o) => o.answer && o.kind !== "settle" && o.kind !== "release");
    if (done.length === 0) return purchase();
    const op = rng.pick(done);
    // A key belongs to the account or hold its request names: the other request is on the same
    // one (another promotion for a redemption, another reason for a refund or an adjustment,
    // another amount otherwise).
    const body = { ...(op.request.body as Record<string, unknown>) };
    let path = op.request.path;
    if (op.kind === "redeem") {
      const other = rng.pick(w.promotions.filter((p) => !path.includes(`/${p.code}/`)));
      path = `/v1/promotions/${other.code}/redemptions`;
    } else if (op.kind === "refund" || op.kind === "adjust") body.reason = "another reason";
    else body.amount = (body.amount as number) + 1;
    const again = await http.send({ ...op.request, path, body }, rng, w.opRetryMs);
    model.count(`reuse-${op.kind}`, again);
    if (again && (again.status !== 422 || again.json?.code !== "idempotency_key_reused"))
      model.violations.push(
        `same key ${op.key}, different body: ${again.status} ${again.text.slice(0, 300)}`,
      );
  };

  const credit = async () => {
    const key = nextKey("c");
    const accountId = rng.pick(w.accounts);
    const request: Request = {
      method: "POST",
      path: `/v1/accounts/${accountId}/credits`,
      token: ADMIN,
      key,
      body: { amount: rng.int(1, 150), reason: "chaos credit", metadata: { chaosKey: key } },
    };
    const op = await keyed(w, rng, { kind: "credit", key, client, accountId, request });
    model.count("credit", op.answer);
    mine.push(op);
    absorb(w, op, `credit ${key}`);
  };

  const redeem = async () => {
    const key = nextKey("r");
    const accountId = rng.pick(w.accounts);
    const promotion = rng.pick(w.promotions);
    const request: Request = {
      method: "POST",
      path: `/v1/promotions/${promotion.code}/redemptions`,
      token: SERVICE,
      key,
      body: { accountId },
    };
    const op = await keyed(w, rng, { kind: "redeem", key, client, accountId, request });
    model.count(`redeem ${promotion.code}`, op.answer);
    mine.push(op);
    absorb(w, op, `redeem ${key}`);
  };

  /** A refund of a hold this client placed: all that is left, or part, or too much. */
  const refund = async () => {
    const placed = mine.filter((o) => o.kind === "purchase" && o.answer?.status === 201);
    if (placed.length === 0) return purchase();
    const hold = model.holds.get(rng.pick(placed).answer!.json.hold.id)!;
    const key = nextKey("f");
    const r = rng.next();
    const amount = r < 0.4 ? undefined : r < 0.9 ? rng.int(1, hold.amount) : hold.amount + 1;
    const request: Request = {
      method: "POST",
      path: `/v1/holds/${hold.id}/refunds`,
      token: SERVICE,
      key,
      body: {
        ...(amount === undefined ? {} : { amount }),
        reason: "chaos refund",
        metadata: { chaosKey: key },
      },
    };
    const op = await keyed(w, rng, {
      kind: "refund",
      key,
      client,
      accountId: hold.accountId,
      request,
    });
    model.count("refund", op.answer);
    mine.push(op);
    absorb(w, op, `refund ${key}`);
    if (op.answer?.status === 201) model.seeHold(op.answer.json.hold, `refund ${key}`);
  };

  /** An admin correction, either way; a negative one may meet insufficient_funds. */
  const adjust = async () => {
    const key = nextKey("j");
    const accountId = rng.pick(w.accounts);
    const amount = rng.chance(0.5) ? rng.int(1, 40) : -rng.int(1, 60);
    const request: Request = {
      method: "POST",
      path: `/v1/accounts/${accountId}/adjustments`,
      token: ADMIN,
      key,
      body: { amount, reason: "chaos adjustment", metadata: { chaosKey: key } },
    };
    const op = await keyed(w, rng, { kind: "adjust", key, client, accountId, request });
    model.count("adjust", op.answer);
    mine.push(op);
    absorb(w, op, `adjust ${key}`);
  };

  const readAccount = async () => {
    const id = rng.pick(w.accounts);
    const answer = await http.send(
      { method: "GET", path: `/v1/accounts/${id}`, token: SERVICE },
      rng,
      w.opRetryMs,
    );
    model.count("read-account", answer);
    model.reads++;
    if (answer?.status === 200) model.seeAccount(answer.json, `GET /v1/accounts/${id}`);
    else if (answer)
      model.violations.push(`GET /v1/accounts/${id}: ${answer.status} ${answer.text}`);
  };

  // A full page of an account's history: what the driver's stale row counter made 149 or 182
  // entries long for 120 (issue 12). seq numbers a user account's entries 1, 2, 3, …, so the
  // page is exactly seq N, N − 1, … down to 1 or to the limit.
  const readEntries = async () => {
    const id = rng.pick(w.accounts);
    const path = `/v1/accounts/${id}/entries?limit=${ENTRIES_PAGE}`;
    const answer = await http.send({ method: "GET", path, token: SERVICE }, rng, w.opRetryMs);
    model.count("read-entries", answer);
    model.reads++;
    if (!answer) return;
    const problem = answer.status === 200 ? entryPageProblem(answer.json) : "";
    if (problem !== undefined)
      model.violations.push(
        `GET ${path}: ${problem} ${answer.status} ${answer.text.slice(0, 300)}`,
      );
  };

  const readHold = async () => {
    const known = [
      ...own,
      ...mine
        .filter((o) => o.kind === "purchase" && o.answer?.status === 201)
        .map((o) => model.holds.get(o.answer!.json.hold.id)!),
    ];
    if (known.length === 0) return readAccount();
    const hold = rng.pick(known);
    const answer = await http.send(
      { method: "GET", path: `/v1/holds/${hold.id}`, token: SERVICE },
      rng,
      w.opRetryMs,
    );
    model.count("read-hold", answer);
    if (answer?.status === 200) model.seeHold(answer.json, `GET /v1/holds/${hold.id}`);
    else if (answer)
      model.violations.push(`GET /v1/holds/${hold.id}: ${answer.status} ${answer.text}`);
  };

  const readPromotion = async () => {
    const promotion = rng.pick(w.promotions);
    const answer = await http.send(
      { method: "GET", path: `/v1/promotions/${promotion.code}`, token: SERVICE },
      rng,
      w.opRetryMs,
    );
    model.count("read-promotion", answer);
    if (
      answer?.status === 200 &&
      promotion.maxRedemptions !== null &&
      answer.json.redemptions > promotion.maxRedemptions
    )
      model.violations.push(`promotion ${promotion.code} over its cap: ${answer.text}`);
  };

  const ops: Record<OpKind, () => Promise<void>> = {
    purchase,
    settle: () => resolve("settle"),
    release: () => resolve("release"),
    replay,
    reuse,
    credit,
    redeem,
    refund,
    adjust,
    readAccount,
    readEntries,
    readHold,
    readPromotion,
  };
  while (running()) {
    await ops[rng.weighted(WEIGHTS)]();
    await sleep(rng.int(0, 20));
  }
}
