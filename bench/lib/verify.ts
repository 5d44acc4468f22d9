import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../../src/db/schema/index.ts";
import { formatReport, verifyLedger } from "../../src/ledger/verify.ts";
import type { BenchConfig } from "../config.ts";
import { log } from "./context.ts";
import { runCli } from "./holdfast.ts";
import { whenSlotFree } from "./retry.ts";

export interface VerifyOutcome {
  ok: boolean;
  /** "holdfast verify: <totals> — <verdict>" */
  line: string;
  via: "holdfast verify" | "verifyLedger in-process";
  /** Why the CLI gave no report, when it did not. */
  cliFailure?: string;
}

function summary(report: string): { ok: boolean; line: string } | undefined {
  const lines = report.split("\n");
  const head = lines.find((l) => l.startsWith("holdfast verify:"));
  const verdict = lines.find((l) => l === "all invariants hold" || l === "INVARIANTS VIOLATED");
  return head && verdict
    ? { ok: verdict === "all invariants hold", line: `${head} — ${verdict}` }
    : undefined;
}

const failureReason = (output: string) =>
  /PostgresError: (.+)/.exec(output)?.[1] ??
  /^\w*Error: (.+)$/m.exec(output)?.[1] ??
  output.trim().split("\n").at(-1) ??
  "no output";

/**
 * Runs `holdfast verify` on the bench database. The CLI's connections carry a 15 s
 * statement_timeout (src/db/client.ts), which a ledger with a million-entry history can outlast
 * on a slow or busy machine; then the same checks (verifyLedger) run here without that timeout,
 * and the outcome says so.
 */
export async function verifyDatabase(config: BenchConfig, url: string): Promise<VerifyOutcome> {
  const { output } = await runCli(config, "verify", url);
  const cli = summary(output);
  if (cli) {
    if (!cli.ok) process.stderr.write(`${output}\n`);
    return { ...cli, via: "holdfast verify" };
  }
  const cliFailure = failureReason(output);
  log(`holdfast verify gave no report (${cliFailure}); running its checks without a timeout`);
  const report = await whenSlotFree("verify", async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { TimeZone: "UTC" } });
    try {
      return formatReport(await verifyLedger(drizzle(sql, { schema }), { overdueGraceMs: 90_000 }));
    } finally {
      await sql.end();
    }
  });
  const inProcess = summary(report) ?? { ok: false, line: report.split("\n")[0] ?? "" };
  if (!inProcess.ok) process.stderr.write(`${report}\n`);
  return { ...inProcess, via: "verifyLedger in-process", cliFailure };
}
