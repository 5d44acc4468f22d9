import { describe, it } from "vitest";
import { chaosConfig } from "../chaos/config.ts";
import { runChaos } from "../chaos/scenario.ts";

/**
 * The chaos run on the local Citus cluster (issue 13): the same workload and faults as
 * `npm run test:chaos`, with a Citus worker node restarted instead of the single Postgres.
 * Sized to keep `npm run test:scale` short on two cores: one round of faults (30 s of
 * workload), 8 clients instead of 16 (each request costs the coordinator and a worker), and 40
 * history credits per account instead of 150 (the setup's credits take 4 times as long as on
 * plain Postgres). Replay or lengthen with CHAOS_SEED=<seed> CHAOS_DURATION_S=<s> npx vitest
 * run --project scale test/scale/chaos.test.ts; CHAOS_CLIENTS and CHAOS_HISTORY_CREDITS too.
 */
const config = chaosConfig({ durationS: 30, clients: 8, historyCredits: 40 });

describe("chaos on Citus", () => {
  it(
    `ledger exact under process kills, a Redis wipe and a Citus worker restart (CHAOS_SEED=${config.seed})`,
    () => runChaos("citus", config),
    // The setup, the drain and the checks come on top of the workload.
    config.durationMs + 10 * 60_000,
  );
});
