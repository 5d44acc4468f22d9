import { describe, it } from "vitest";
import { chaosConfig } from "./config.ts";
import { runChaos } from "./scenario.ts";

/**
 * The chaos run (issue 5) on plain Postgres: API and worker processes under a seeded random
 * workload while workers and APIs are SIGKILLed, the queue's Redis keys vanish and Postgres
 * restarts; then the ledger must match what the clients were told, to the coin. Replay a run
 * with the seed it prints: CHAOS_SEED=<seed> npm run test:chaos. CHAOS_DURATION_S=300 for a
 * longer one. test/scale/chaos.test.ts runs the same on Citus.
 */
const config = chaosConfig();

describe("chaos", () => {
  it(`ledger exact under process kills, a Redis wipe and a Postgres restart (CHAOS_SEED=${config.seed})`, () =>
    runChaos("plain", config));
});
