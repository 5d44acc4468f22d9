import type { BenchConfig } from "../config.ts";
import { connect, seedAccounts } from "./database.ts";
import { startServe } from "./holdfast.ts";
import { whenSlotFree } from "./retry.ts";

export interface Api {
  baseUrl: string;
  /** The API's process, when the bench started it. */
  pid?: number | undefined;
  stop(): Promise<void>;
}

/**
 * What the scenarios run against: a holdfast the bench starts itself (a fresh `serve` for
 * every measurement, on the bench database) or, with BENCH_URL, one that is already running.
 */
export interface Target {
  own: boolean;
  /** The target's database, when the bench may write to it directly. */
  databaseUrl: string | undefined;
  /** A holdfast API to load; `env` is only honoured by an own target. */
  api(scenario: string, env?: Record<string, string>): Promise<Api>;
}

export function ownTarget(config: BenchConfig, databaseUrl: string): Target {
  return {
    own: true,
    databaseUrl,
    async api(scenario, extra) {
      const api = await startServe(config, { databaseUrl, scenario, extra });
      return {
        baseUrl: api.baseUrl,
        pid: api.child.process.pid,
        stop: async () => {
          await api.child.stop();
        },
      };
    },
  };
}

export function runningTarget(config: BenchConfig, url: string): Target {
  return {
    own: false,
    databaseUrl: config.targetDatabaseUrl,
    api: async () => ({ baseUrl: url, stop: async () => {} }),
  };
}

async function call(
  config: BenchConfig,
  base: string,
  path: string,
  body: unknown,
  key?: string,
): Promise<void> {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${config.adminToken}`,
      "content-type": "application/json",
      ...(key ? { "idempotency-key": key } : {}),
    },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) {
    throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
  }
}

/**
 * Creates and funds accounts: with set-based SQL when the bench may write to the database,
 * otherwise through the API (an account and `credits` credits each, a few at a time).
 */
export async function prepareAccounts(
  config: BenchConfig,
  target: Target,
  input: { ids: string[]; credits: number; amount: number },
): Promise<void> {
  if (target.databaseUrl) {
    return seedAccounts(target.databaseUrl, { ...input, deferForeignKeys: target.own });
  }
  const api = await target.api("seed");
  try {
    const queue = [...input.ids];
    const lanes = Array.from({ length: 16 }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        await call(config, api.baseUrl, "/v1/accounts", { id, metadata: { bench: true } });
        for (let c = 1; c <= input.credits; c++) {
          await call(
            config,
            api.baseUrl,
            `/v1/accounts/${id}/credits`,
            { amount: input.amount, reason: "bench seed" },
            `${id}-seed-${c}`,
          );
        }
      }
    });
    await Promise.all(lanes);
  } finally {
    await api.stop();
  }
}

/**
 * VACUUM ANALYZE and a CHECKPOINT before a measurement, so that neither autovacuum, woken by
 * the previous scenario's inserts and updates, nor a checkpoint of the pages they dirtied (a
 * million-entry history is written before the first scenario) runs during this one.
 */
export async function quiesce(target: Target): Promise<void> {
  const url = target.databaseUrl;
  if (!target.own || !url) return;
  await whenSlotFree("vacuum", async () => {
    const sql = connect(url);
    try {
      await sql`VACUUM (ANALYZE) accounts, holds, idempotency_keys, entries, ledger_transactions`;
      await sql`CHECKPOINT`;
    } finally {
      await sql.end();
    }
  });
}
