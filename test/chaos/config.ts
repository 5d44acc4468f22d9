import { randomInt } from "node:crypto";

/** Where a chaos run puts holdfast: the single Postgres, or the local Citus cluster. */
export type ChaosTarget = "plain" | "citus";

export interface ChaosConfig {
  /** Replays a run's choices: CHAOS_SEED=<this> npm run test:chaos. */
  seed: number;
  /** How long the clients run the workload; faults happen within it. */
  durationMs: number;
  clients: number;
  apis: number;
  workers: number;
  accounts: number;
  /**
   * Credits on each account before the run: a history long enough that an entry page is
   * several socket writes, so that a cancel, a terminate or a statement timeout can land after
   * some of its rows have streamed.
   */
  historyCredits: number;
  sweepIntervalMs: number;
  /** How long one operation keeps retrying before it is set aside for the drain. */
  opRetryMs: number;
}

function integer(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** The run's settings from CHAOS_* variables; `defaults` for those a test sizes itself. */
export function chaosConfig(
  defaults: { durationS?: number; clients?: number; historyCredits?: number } = {},
): ChaosConfig {
  return {
    seed: integer("CHAOS_SEED", randomInt(2 ** 31), 0, 2 ** 32 - 1),
    durationMs: integer("CHAOS_DURATION_S", defaults.durationS ?? 30, 5, 24 * 3600) * 1000,
    clients: integer("CHAOS_CLIENTS", defaults.clients ?? 16, 1, 512),
    apis: integer("CHAOS_APIS", 2, 1, 16),
    workers: integer("CHAOS_WORKERS", 2, 1, 16),
    accounts: integer("CHAOS_ACCOUNTS", 20, 2, 1000),
    historyCredits: integer("CHAOS_HISTORY_CREDITS", defaults.historyCredits ?? 150, 0, 10_000),
    sweepIntervalMs: 1000,
    opRetryMs: 30_000,
  };
}
