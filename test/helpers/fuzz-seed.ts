import type { CallOptions, TestApp } from "./app.ts";
import { SERVICE } from "./app.ts";

/** Rows that generated ids and codes can hit, so that fuzzing reaches past "not found". */
export interface Seeded {
  accounts: string[];
  holds: string[];
  codes: string[];
  entryCursors: string[];
  holdCursors: string[];
}

export async function seed(t: TestApp): Promise<Seeded> {
  // biome-ignore lint/suspicious/noExplicitAny: seeding reads a few known fields
  const ok = async (method: string, path: string, opts: CallOptions): Promise<any> => {
    const r = await t.call(method, path, opts);
    if (r.status >= 300) throw new Error(`seeding ${method} ${path}: ${r.status} ${r.text}`);
    return r.json;
  };
  const accounts = ["alice", "bob", "carol"];
  for (const id of accounts) {
    await ok("POST", "/v1/accounts", { token: SERVICE, body: { id, metadata: { seeded: true } } });
  }
  for (let i = 0; i < 3; i++) {
    await ok("POST", "/v1/accounts/alice/credits", { key: `seed-a${i}`, body: { amount: 1000 } });
  }
  await ok("POST", "/v1/accounts/bob/credits", { key: "seed-b", body: { amount: 10 } });
  const holds: string[] = [];
  for (let i = 0; i < 5; i++) {
    const placed = await ok("POST", "/v1/purchases", {
      token: SERVICE,
      key: `seed-h${i}`,
      body: { accountId: "alice", amount: 5, orderId: `order-${i}`, expiresInSeconds: 3600 },
    });
    holds.push(placed.hold.id);
  }
  await ok("POST", `/v1/holds/${holds[1]}/settle`, { token: SERVICE, body: { amount: 3 } });
  await ok("POST", `/v1/holds/${holds[2]}/release`, { token: SERVICE, body: { reason: "seed" } });
  await ok("POST", `/v1/holds/${holds[4]}/settle`, { token: SERVICE });
  await ok("POST", `/v1/holds/${holds[4]}/refunds`, {
    token: SERVICE,
    key: "seed-rf",
    body: { amount: 1, reason: "seed" },
  });
  const later = new Date(Date.now() + 365 * 86_400_000).toISOString();
  await ok("POST", "/v1/promotions", { body: { code: "SPRING" } });
  await ok("POST", "/v1/promotions", { body: { code: "LATER", multiplier: 3, startsAt: later } });
  await ok("POST", "/v1/promotions", { body: { code: "SPENT", maxRedemptions: 1 } });
  await ok("POST", "/v1/promotions/SPENT/redemptions", {
    token: SERVICE,
    key: "seed-r",
    body: { accountId: "bob" },
  });
  const entries = await ok("GET", "/v1/accounts/alice/entries?limit=1", { token: SERVICE });
  const listed = await ok("GET", "/v1/accounts/alice/holds?limit=1", { token: SERVICE });
  return {
    accounts: [...accounts, "@issuance", "@revenue", "@promotions"],
    holds,
    codes: ["SPRING", "LATER", "SPENT"],
    entryCursors: [entries.nextCursor],
    holdCursors: [listed.nextCursor],
  };
}
