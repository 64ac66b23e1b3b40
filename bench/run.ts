// `npm run bench` — runs the benchmark scenarios, prints one markdown table per scenario to
// stdout and writes the same figures as JSON to bench/results/latest.json.
//
//   node bench/run.ts [--quick] [--only NAME[,NAME…]] [--out FILE]
//
// --quick: small sizes, the whole run in under a minute (CI). Progress goes to stderr.
// A new scenario is a module under bench/ exporting a `Scenario` (lib/report.ts): add it to
// SCENARIOS below; its rows become a table and its `json` a section of latest.json.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { engineScenario } from "./engine.ts";
import { latencyScenario } from "./latency.ts";
import { churnScenario } from "./churn.ts";
import { controllerCostScenario } from "./controller-cost.ts";
import { reloadVsRuntimeScenario } from "./reload-vs-runtime.ts";
import { failoverScenario } from "./failover.ts";
import { haproxyMemoryScenario } from "./haproxy-memory.ts";
import { localModeScenario } from "./local-mode.ts";
import { markdownSection, type Scenario, type ScenarioResult } from "./lib/report.ts";
import { formatMs } from "./lib/stats.ts";
import { haproxyVersion } from "../src/sim/haproxy.ts";

const SCENARIOS: readonly Scenario[] = [engineScenario, latencyScenario, reloadVsRuntimeScenario, churnScenario, controllerCostScenario, failoverScenario, haproxyMemoryScenario, localModeScenario];

const here = dirname(fileURLToPath(import.meta.url));

async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      out: { type: "string", default: join(here, "results", "latest.json") },
    },
    strict: true,
  });
  const only = values.only?.split(",").map((name) => name.trim());
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) throw new TypeError(`--only: unknown scenario ${unknown.join(", ")} (known: ${SCENARIOS.map((s) => s.name).join(", ")})`);
  const chosen = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);

  const started = performance.now();
  const sections: Record<string, { title: string; durationMs: number; result: unknown }> = {};
  const files: Record<string, string> = {};
  const mode = values.quick ? "quick" : "full";
  process.stdout.write(`# kube-haproxy bench (${mode})\n\n`);
  for (const scenario of chosen) {
    log(`── ${scenario.name}`);
    const at = performance.now();
    const result: ScenarioResult = await scenario.run({ quick: values.quick, log });
    const durationMs = performance.now() - at;
    sections[scenario.name] = { title: result.title, durationMs, result: result.json };
    Object.assign(files, result.files);
    process.stdout.write(markdownSection(result) + "\n");
    log(`── ${scenario.name} done in ${formatMs(durationMs)}`);
  }

  const out = values.out;
  await mkdir(dirname(out), { recursive: true });
  const report = {
    generatedAt: new Date().toISOString(),
    mode,
    machine: await machine(),
    durationMs: performance.now() - started,
    scenarios: sections,
  };
  await writeFile(out, JSON.stringify(report, null, 2) + "\n");
  for (const [name, text] of Object.entries(files)) await writeFile(join(dirname(out), name), text);
  log(`wrote ${out}${Object.keys(files).length ? ` and ${Object.keys(files).join(", ")}` : ""} (${formatMs(report.durationMs)} in all)`);
}

async function machine(): Promise<Record<string, unknown>> {
  // No HAProxy there: the scenarios will say so.
  const haproxy = await haproxyVersion().catch(() => "unknown");
  return { node: process.version, haproxy, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "", memoryMb: Math.round(totalmem() / 2 ** 20), platform: `${process.platform}-${process.arch}` };
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // One sentence; the stack only when asked for (KUBE_HAPROXY_BENCH_DEBUG=1).
  const detail = process.env.KUBE_HAPROXY_BENCH_DEBUG && error instanceof Error ? `\n${error.stack}` : "";
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}${detail}\n`);
  process.exitCode = 1;
});
