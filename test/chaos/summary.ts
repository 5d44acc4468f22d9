import type { FinalTotals } from "./checks.ts";
import type { Cluster } from "./cluster.ts";
import type { ChaosTarget } from "./config.ts";
import type { FaultRecord } from "./faults.ts";
import type { FulfilmentStats } from "./fulfilment.ts";
import type { HttpStats } from "./http.ts";
import type { Model } from "./model.ts";

export interface SummaryInput {
  seed: number;
  target: ChaosTarget;
  durationMs: number;
  wallMs: number;
  clients: number;
  model: Model;
  http: HttpStats;
  faults: FaultRecord[];
  fulfilment: FulfilmentStats;
  cluster: Cluster;
  totals?: FinalTotals | undefined;
  drainMs?: number | undefined;
  problems: string[];
}

/** The one block a chaos run prints: enough to compare runs and to replay a failing one. */
export function formatSummary(s: SummaryInput): string {
  const ops = Object.values(s.model.outcomes).reduce(
    (sum, byOutcome) => sum + Object.values(byOutcome).reduce((a, b) => a + b, 0),
    0,
  );
  const lines = [
    `== chaos run${s.target === "citus" ? " on Citus" : ""}: CHAOS_SEED=${s.seed} CHAOS_DURATION_S=${s.durationMs / 1000} (${s.clients} clients; wall ${(s.wallMs / 1000).toFixed(1)} s${s.drainMs === undefined ? "" : `, drain ${(s.drainMs / 1000).toFixed(1)} s`})`,
    `operations: ${ops}`,
  ];
  for (const [kind, byOutcome] of Object.entries(s.model.outcomes).sort()) {
    const parts = Object.entries(byOutcome)
      .sort((a, b) => b[1] - a[1])
      .map(([outcome, n]) => `${outcome}: ${n}`);
    lines.push(`  ${kind.padEnd(28)} ${parts.join(", ")}`);
  }
  lines.push(
    `http: ${s.http.requests} requests, ${s.http.retries} retries, ${s.http.unavailable} × 503 unavailable, ` +
      `${s.http.keyInUse} × 409 idempotency_key_in_use, ${s.http.otherServerErrors} other 5xx, ` +
      `network errors ${JSON.stringify(s.http.networkErrors)}, ` +
      `${s.http.timeouts.length} attempts without an answer in 20 s, gave up ${s.http.gaveUp}`,
  );
  lines.push(`faults (${s.faults.length}):`);
  for (const f of s.faults)
    lines.push(
      `  +${(f.startedMs / 1000).toFixed(1).padStart(5)} s ${f.kind.padEnd(16)} ${f.detail}`,
    );
  lines.push(
    `fulfilment: ${s.fulfilment.requests} requests ${JSON.stringify(s.fulfilment.byAnswer)}, ` +
      `${s.fulfilment.redelivered} holds asked more than once, ${s.fulfilment.badSignatures} bad signatures`,
  );
  const errorsByMsg: Record<string, number> = {};
  const examples = new Map<string, string>();
  for (const e of s.cluster.errors) {
    const key = `${e.member.replace(/-\d+$/, "")}: ${e.msg.slice(0, 80)}`;
    errorsByMsg[key] = (errorsByMsg[key] ?? 0) + 1;
    if (!examples.has(key)) examples.set(key, e.line.slice(0, 400));
  }
  lines.push(
    `processes: ${s.cluster.members.map((m) => m.name).join(", ")}; start retries ${s.cluster.startFailures.length}; ` +
      `error-level log lines ${JSON.stringify(errorsByMsg)}`,
  );
  for (const [key, line] of examples) lines.push(`  e.g. ${key}: ${line}`);
  lines.push(
    `reads: ${s.model.reads} balance reads, ${s.model.accountsSeen} account bodies checked, ${s.model.terminalSeen.size} terminal holds seen`,
  );
  if (s.totals) {
    lines.push(
      `totals: holds ${JSON.stringify(s.totals.holds)}; credited ${s.totals.credited}, promotions ${s.totals.promotionCredited}, ` +
        `settled ${s.totals.settled}, refunded ${s.totals.refunded}, adjusted ${s.totals.adjusted}; users ${s.totals.users}, system ${JSON.stringify(s.totals.system)}`,
    );
  }
  lines.push(
    s.problems.length === 0
      ? "result: all checks passed"
      : `result: ${s.problems.length} problem(s):\n${s.problems.map((p) => `  - ${p}`).join("\n")}`,
  );
  return lines.join("\n");
}
