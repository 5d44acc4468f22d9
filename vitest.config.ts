import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["./test/helpers/global-setup.ts"],
    include: ["test/**/*.test.ts"],
    exclude: ["test/chaos/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files run in parallel; each gets its own database and Redis key prefix.
    pool: "forks",
    maxWorkers: 2,
  },
});
