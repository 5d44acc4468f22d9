import type { BenchConfig } from "../config.ts";
import { runCli } from "./holdfast.ts";

export interface VerifyOutcome {
  ok: boolean;
  /** "holdfast verify: <totals> — <verdict>" */
  line: string;
}

/** Runs `holdfast verify` on the bench database: a correct bench leaves a consistent ledger. */
export async function verifyDatabase(config: BenchConfig, url: string): Promise<VerifyOutcome> {
  const { output } = await runCli(config, "verify", url);
  const lines = output.split("\n");
  const head = lines.find((l) => l.startsWith("holdfast verify:"));
  const verdict = lines.find((l) => l === "all invariants hold" || l === "INVARIANTS VIOLATED");
  const ok = verdict === "all invariants hold";
  if (!ok) process.stderr.write(`${output}\n`);
  return { ok, line: head && verdict ? `${head} — ${verdict}` : (lines.at(-1) ?? "no output") };
}
