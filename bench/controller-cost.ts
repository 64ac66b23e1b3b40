// The controller's own cost: initial lists + translation + render for many Service ports, the
// process's peak RSS, and CPU time per 1,000 slice changes through the in-process sidecar
// with a real HAProxy. Everything runs in this one process, the simulated API server
// included, so RSS and CPU are upper bounds for the controller alone.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderFromCluster } from "../src/bootstrap.ts";
import { silentLogger } from "../src/log.ts";
import { startSidecar } from "../src/sidecar.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { startHaproxy } from "../src/sim/haproxy.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs } from "./lib/stats.ts";
import { appliedIps, fastOptions, nextApplied } from "./lib/world.ts";

const PER_SERVICE = 10;
const ip = (s: number, j: number, gen = 0): string => {
  const g = s * PER_SERVICE + j;
  return `127.${250 + (gen % 4)}.${Math.floor(g / 250) % 250}.${(g % 250) + 1}`;
};

async function cost(services: number, changes: number, cpuPart: boolean, log: (line: string) => void) {
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-cost-"));
  const cluster = await startSimulatedCluster(dir);
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const slice = (s: number, gen = 0) => makeSlice("default", `svc${s}`, `svc${s}-1`, Array.from({ length: PER_SERVICE }, (_, j) => ({ ip: ip(s, j, gen) })), [{ port: 8080 }]);
    for (let s = 0; s < services; s++) {
      cluster.api.upsert("services", makeService("default", `svc${s}`, [{ port: 20_000 + s }]));
      cluster.api.upsert("endpointslices", slice(s));
    }
    global.gc?.();
    const baselineRss = process.memoryUsage().rss;
    const options = fastOptions(dir, cluster.kubeconfig, 16);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await renderFromCluster(options, silentLogger, {});
    const renderMs = performance.now() - t0;
    const renderCpuMs = (() => { const c = process.cpuUsage(cpu0); return (c.user + c.system) / 1000; })();
    peak = Math.max(peak, process.memoryUsage().rss);
    log(`controller-cost: ${services} Service ports / ${services * PER_SERVICE} endpoints rendered in ${formatMs(renderMs)}`);
    let cpu: { changes: number; cpuMsPer1000: number; wallMs: number; haproxyStartMs: number; sidecarStartMs: number } | undefined;
    if (cpuPart) {
      const h0 = performance.now();
      const haproxy = await startHaproxy({ dir, configPath: options.config });
      const haproxyStartMs = performance.now() - h0;
      const s0 = performance.now();
      const sidecar = startSidecar(options, { log: silentLogger, env: {} });
      try {
        await sidecar.started;
        await sidecar.reloader.idle();
        await sidecar.engine.whenSynced();
        const sidecarStartMs = performance.now() - s0;
        peak = Math.max(peak, process.memoryUsage().rss);
        const last = (changes - 1) % services;
        const lastGen = 1 + Math.floor((changes - 1) / services);
        const lastBackend = `default:svc${last}:${20_000 + last}`;
        const done = nextApplied(sidecar, lastBackend, () => appliedIps(sidecar, lastBackend, "ready").includes(ip(last, 0, lastGen)), 60_000);
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        for (let i = 0; i < changes; i++) {
          cluster.api.upsert("endpointslices", slice(i % services, 1 + Math.floor(i / services)));
          if (i % 100 === 99) await new Promise((r) => setImmediate(r));
        }
        await done;
        await sidecar.engine.whenSynced();
        const wallMs = performance.now() - w0;
        const c = process.cpuUsage(c0);
        cpu = { changes, cpuMsPer1000: ((c.user + c.system) / 1000) * (1000 / changes), wallMs, haproxyStartMs, sidecarStartMs };
        log(`controller-cost: ${changes} changes applied in ${formatMs(wallMs)}`);
      } finally {
        await sidecar.stop();
        await haproxy.stop();
      }
    }
    return { services, endpoints: services * PER_SERVICE, renderMs, renderCpuMs, baselineRssMb: baselineRss / 2 ** 20, peakRssMb: Math.max(peak, process.memoryUsage().rss) / 2 ** 20, cpu };
  } finally {
    clearInterval(sampler);
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const controllerCostScenario: Scenario = {
  name: "controller-cost",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const runs = context.quick
      ? [await cost(1_000, 1_000, true, context.log)]
      : [await cost(1_000, 2_000, true, context.log), await cost(10_000, 0, false, context.log)];
    return {
      title: "Controller cost (initial lists + translate + render; CPU per 1,000 slice changes)",
      columns: ["Service ports", "endpoints", "lists + render", "render CPU", "RSS before (API sim only)", "peak RSS", "changes", "CPU / 1,000 changes", "changes wall time"],
      rows: runs.map((r) => [
        r.services.toLocaleString("en-US"), r.endpoints.toLocaleString("en-US"), formatMs(r.renderMs), formatMs(r.renderCpuMs),
        `${r.baselineRssMb.toFixed(0)} MB`, `${r.peakRssMb.toFixed(0)} MB`,
        r.cpu ? r.cpu.changes.toLocaleString("en-US") : "–", r.cpu ? formatMs(r.cpu.cpuMsPer1000) : "–", r.cpu ? formatMs(r.cpu.wallMs) : "–",
      ]),
      notes: [
        "One process holds the simulated API server (with all objects) and the controller: peak RSS and CPU are upper bounds for the controller alone; 'RSS before' is the process with the API server populated, before any controller work.",
        "CPU per 1,000 changes: process.cpuUsage around slice updates (one endpoint set replaced per update, 10 endpoints each) through the in-process sidecar to a real HAProxy, including the API server's watch encoding.",
        context.quick ? "" : "The 10,000-port run measures startup only (no HAProxy); the CPU part uses 1,000 ports.",
        "Target: RSS ≤ 256 MB at 100,000 endpoints.",
      ].filter(Boolean),
      json: { runs },
    };
  },
};
