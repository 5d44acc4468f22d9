import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { servedDocument } from "./openapi-document.ts";

/**
 * Lints the served document with redocly's recommended ruleset and fails on any error or
 * warning (redocly itself fails on errors only). The document is written under
 * node_modules/.cache at a fixed path, the one .redocly.lint-ignore.yaml names.
 */
const dir = "node_modules/.cache/holdfast";
const file = `${dir}/openapi.json`;
mkdirSync(dir, { recursive: true });
writeFileSync(file, await servedDocument());

const run = spawnSync(
  "node_modules/.bin/redocly",
  ["lint", "--extends=recommended", "--format=json", file],
  { encoding: "utf8" },
);
let report: {
  totals: { errors: number; warnings: number; ignored: number };
  problems: {
    ruleId: string;
    severity: string;
    message: string;
    location: { pointer: string }[];
  }[];
};
try {
  report = JSON.parse(run.stdout);
} catch {
  process.stderr.write(run.stdout + run.stderr);
  throw new Error(`redocly lint exited with ${run.status} and no report`);
}
for (const p of report.problems) {
  console.log(`${p.severity} ${p.ruleId}: ${p.message} (${p.location[0]?.pointer ?? ""})`);
}
const { errors, warnings, ignored } = report.totals;
console.log(`redocly lint ${file}: ${errors} errors, ${warnings} warnings, ${ignored} ignored`);
if (errors + warnings > 0) process.exit(1);
