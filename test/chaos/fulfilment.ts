import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { unitFrom } from "./random.ts";

export type FulfilmentMode = "ok" | "partial" | "refuse" | "flaky" | "slow";

/** What the service answers for a hold: fixed by the seed and the hold's orderId. */
export interface Behaviour {
  mode: FulfilmentMode;
  /** partial: the amount it asks to settle. */
  amount?: number;
  /** flaky: how many 503s before the 200. */
  failures?: number;
  /** slow: how long it takes to answer. */
  delayMs?: number;
  /** refuse: the status (4xx) and reason. */
  status?: number;
  reason?: string;
}

/**
 * The behaviour is drawn from the seed and the orderId rather than the hold id: the orderId is
 * the seed-derived name of the hold (one hold per purchase key), while hold ids are UUIDv7 made
 * by the server, so keying on them would change every answer on a replay of the seed.
 */
export function behaviourFor(seed: number, orderId: string, amount: number): Behaviour {
  const u = unitFrom(seed, "fulfil", orderId);
  const v = unitFrom(seed, "fulfil-detail", orderId);
  if (u < 0.4) return { mode: "ok" };
  if (u < 0.55) return { mode: "partial", amount: 1 + Math.floor(v * amount) };
  if (u < 0.7) {
    const status = [402, 409, 422][Math.floor(v * 3)]!;
    return { mode: "refuse", status, reason: `chaos refusal ${status} for ${orderId}` };
  }
  if (u < 0.85) return { mode: "flaky", failures: 1 + Math.floor(v * 3) };
  return { mode: "slow", delayMs: 800 + Math.floor(v * 4000) };
}

export interface FulfilmentStats {
  requests: number;
  byAnswer: Record<string, number>;
  badSignatures: number;
  badIdempotencyKeys: number;
  /** Holds asked about more than once (retries, redeliveries after a kill or a Redis wipe). */
  redelivered: number;
}

export interface FulfilmentService {
  url: string;
  secret: string;
  stats: FulfilmentStats;
  /** Per hold: the settle amounts it answered 2xx with (undefined = the whole hold). */
  settledBy: Map<string, (number | undefined)[]>;
  /** Per hold: the refusal reasons it answered. */
  refusedWith: Map<string, string[]>;
  /** Requests being answered right now (slow ones mostly). */
  inFlight(): number;
  /** Problems seen: bad signatures, wrong idempotency keys, unreadable bodies. */
  problems: string[];
  close(): Promise<void>;
}

function verifySignature(secret: string, header: string | undefined, body: string): string | null {
  if (!header) return "no Holdfast-Signature header";
  const parts = Object.fromEntries(
    header.split(",").map((p) => p.split("=", 2) as [string, string]),
  );
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1) return `malformed signature ${header}`;
  if (Math.abs(Date.now() / 1000 - t) > 300) return `signature timestamp ${t} is stale`;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(parts.v1, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return "signature does not match";
  return null;
}

/** The fulfilment webhook of the chaos run, on 127.0.0.1 (a random port), in this process. */
export async function startFulfilmentService(
  seed: number,
  secret: string,
): Promise<FulfilmentService> {
  const stats: FulfilmentStats = {
    requests: 0,
    byAnswer: {},
    badSignatures: 0,
    badIdempotencyKeys: 0,
    redelivered: 0,
  };
  const attempts = new Map<string, number>();
  const settledBy = new Map<string, (number | undefined)[]>();
  const refusedWith = new Map<string, string[]>();
  const problems: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;

  const answer = (res: ServerResponse, label: string, status: number, body: unknown) => {
    stats.byAnswer[label] = (stats.byAnswer[label] ?? 0) + 1;
    if (!res.destroyed)
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    stats.requests++;
    const signatureProblem = verifySignature(
      secret,
      req.headers["holdfast-signature"] as string | undefined,
      body,
    );
    if (signatureProblem) {
      stats.badSignatures++;
      problems.push(`fulfilment: ${signatureProblem}`);
      return answer(res, "bad-signature", 401, { reason: signatureProblem });
    }
    let hold: { holdId: string; orderId: string | null; amount: number };
    try {
      hold = JSON.parse(body);
    } catch {
      problems.push(`fulfilment: unreadable body ${body.slice(0, 200)}`);
      return answer(res, "bad-body", 400, { reason: "unreadable" });
    }
    if (req.headers["idempotency-key"] !== hold.holdId) {
      stats.badIdempotencyKeys++;
      problems.push(
        `fulfilment: Idempotency-Key ${req.headers["idempotency-key"]} for hold ${hold.holdId}`,
      );
    }
    const attempt = attempts.get(hold.holdId) ?? 0;
    attempts.set(hold.holdId, attempt + 1);
    if (attempt === 1) stats.redelivered++;
    const b = behaviourFor(seed, hold.orderId ?? hold.holdId, hold.amount);
    const settle = (amount: number | undefined) => {
      settledBy.set(hold.holdId, [...(settledBy.get(hold.holdId) ?? []), amount]);
    };
    switch (b.mode) {
      case "ok":
        settle(undefined);
        return answer(res, "ok", 200, { ok: true });
      case "partial":
        settle(b.amount);
        return answer(res, "partial", 200, { amount: b.amount });
      case "refuse":
        refusedWith.set(hold.holdId, [...(refusedWith.get(hold.holdId) ?? []), b.reason!]);
        return answer(res, "refuse", b.status!, { reason: b.reason });
      case "flaky":
        if (attempt < b.failures!) return answer(res, "503", 503, { reason: "try later" });
        settle(undefined);
        return answer(res, "ok-after-503", 200, { ok: true });
      case "slow": {
        inFlight++;
        const timer = setTimeout(() => {
          timers.delete(timer);
          inFlight--;
          settle(undefined);
          answer(res, "slow", 200, { ok: true });
        }, b.delayMs);
        timers.add(timer);
        return;
      }
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/fulfil`,
    secret,
    stats,
    settledBy,
    refusedWith,
    inFlight: () => inFlight,
    problems,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
