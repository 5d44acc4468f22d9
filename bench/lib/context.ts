import type { accountIds, BenchConfig } from "../config.ts";
import type { Target } from "./target.ts";

export interface BenchContext {
  config: BenchConfig;
  target: Target;
  ids: ReturnType<typeof accountIds>;
}

const started = Date.now();

/** Progress goes to stderr, so stdout carries only the table. */
export function log(message: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${seconds}s] ${message}\n`);
}
