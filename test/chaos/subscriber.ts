import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { verifyHoldfast } from "../helpers/signatures.ts";
import { unitFrom } from "./random.ts";

/** A received event: what the subscriber checks and counts. */
interface Receipt {
  accountId: string;
  sequence: number;
}

export interface Subscriber {
  url: string;
  /** Set once the endpoint is created: the secret that signs. */
  secret?: string;
  /** Event id → its first receipt; `firsts` keeps the order of first receipts per account. */
  received: Map<string, Receipt>;
  firsts: Map<string, number[]>;
  deliveries: number;
  problems: string[];
  close(): Promise<void>;
}

/**
 * The chaos run's webhook subscriber: records each event's first receipt, checks every
 * signature and the Holdfast-Event-Id header, and answers 503 to a seeded 2% of first
 * deliveries, so that retries, and the hold-back of an account's later events, happen under
 * the faults too.
 */
export async function startSubscriber(seed: number): Promise<Subscriber> {
  const s: Subscriber = {
    url: "",
    received: new Map(),
    firsts: new Map(),
    deliveries: 0,
    problems: [],
    close: async () => {},
  };
  const refused = new Set<string>();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      s.deliveries++;
      let event: { id: string; accountId: string; sequence: number };
      try {
        event = JSON.parse(body);
      } catch {
        s.problems.push(`webhook with an unreadable body: ${body.slice(0, 200)}`);
        res.statusCode = 400;
        return res.end();
      }
      const signature = String(req.headers["holdfast-signature"] ?? "");
      if (!s.secret || !verifyHoldfast(body, signature, s.secret))
        s.problems.push(`webhook ${event.id} with a bad signature: ${signature}`);
      if (req.headers["holdfast-event-id"] !== event.id)
        s.problems.push(
          `webhook ${event.id} with Holdfast-Event-Id ${req.headers["holdfast-event-id"]}`,
        );
      if (!refused.has(event.id) && unitFrom(seed, "webhook", event.id) < 0.02) {
        refused.add(event.id);
        res.statusCode = 503;
        return res.end();
      }
      if (!s.received.has(event.id)) {
        s.received.set(event.id, { accountId: event.accountId, sequence: event.sequence });
        s.firsts.set(event.accountId, [...(s.firsts.get(event.accountId) ?? []), event.sequence]);
      }
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}

/** The subscriber's failures against the events the database holds: none missing, none out of order. */
export function subscriberProblems(
  s: Subscriber,
  events: { id: string; account_id: string; sequence: number }[],
): string[] {
  const problems = [...s.problems];
  const missing = events.filter((e) => !s.received.has(e.id));
  if (missing.length > 0)
    problems.push(
      `${missing.length} event(s) never reached the subscriber, e.g. ${JSON.stringify(missing.slice(0, 3))}`,
    );
  for (const [accountId, sequences] of s.firsts) {
    const sorted = [...sequences].sort((a, b) => a - b);
    if (sequences.some((n, i) => n !== sorted[i]))
      problems.push(
        `account ${accountId}'s events first arrived out of order: ${sequences.join(",")}`,
      );
  }
  return problems;
}
