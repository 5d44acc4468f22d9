import { defineConfig } from "vitest/config";

// Two projects. `default` is the suite (`npm test`); `chaos` (`npm run test:chaos`) starts
// API and worker processes, kills them, empties Redis and restarts Postgres, so it never runs
// with the suite. vitest runs every project unless told otherwise, hence `--project default`
// in the test script; `npx vitest run test/http/…` still works, as only `default` includes it.
export default defineConfig({
  test: {
    globalSetup: ["./test/helpers/global-setup.ts"],
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "default",
          include: ["test/**/*.test.ts"],
          exclude: ["test/chaos/**", "test/scale/**"],
          // Fails a test that received a response the OpenAPI document does not declare.
          setupFiles: ["./test/helpers/contract-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          // Files run in parallel; each gets its own database and Redis key prefix.
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          // `npm run test:scale`: test/scale, and suites of the write side again, on the local
          // Citus cluster (a database per file, its tables distributed). The suites that call
          // the batch verbs directly with accounts of several shards, or watch lock waits in
          // pg_stat_activity, are plain-Postgres tests: on Citus the write path makes batches
          // per shard, and lock waits happen on the workers.
          name: "scale",
          include: [
            "test/scale/**/*.test.ts",
            "test/ledger/ledger.test.ts",
            "test/http/purchases.test.ts",
            "test/http/promotions.test.ts",
            "test/http/refunds.test.ts",
            "test/webhooks/webhooks.test.ts",
            "test/workers/expire.test.ts",
          ],
          globalSetup: ["./test/helpers/global-setup.ts", "./test/scale/global-setup.ts"],
          env: { HOLDFAST_TEST_CITUS: "1" },
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One file at a time: each distributes its own database over the same three nodes.
          fileParallelism: false,
          maxWorkers: 1,
        },
      },
      {
        extends: true,
        test: {
          name: "chaos",
          include: ["test/chaos/**/*.test.ts"],
          // One file at a time: a chaos run restarts the shared Postgres.
          fileParallelism: false,
          maxWorkers: 1,
          // CHAOS_DURATION_S lengthens the run; the drain and the checks come on top.
          testTimeout: 60 * 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
