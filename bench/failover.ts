// Failover (issue 13), each figure against a baseline measured in the same run:
//
//   kill  4 loopback pods behind the real sync path (fake API server → sidecar → HAProxy) and
//         clients opening a new connection per request; one pod stops abruptly (listener and
//         connections closed at once, as after a SIGKILL) and stays in its EndpointSlice for a
//         while, as until the cluster notices; then it leaves the slice. Failed requests are
//         counted with --connect-retries 0 (the baseline: a failed connection fails, as behind
//         kube-proxy) and with the default 3 (retried on another endpoint), in tcp and http mode.
//   cost  one Service with E endpoints, health checks off and on (every 500 ms, the default):
//         HAProxy's CPU time (all its threads) over the same window, per 1,000 endpoints.

import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { killUnderLoad, type KillResult } from "../src/sim/failover.ts";
import { startWorld } from "../src/sim/world.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";

const CLIENTS = 4;

interface KillRun extends KillResult {
  readonly mode: "tcp" | "http";
  readonly retries: number;
}

async function kill(mode: "tcp" | "http", retries: number, staleMs: number, base: number, log: (line: string) => void): Promise<KillRun> {
  const world = await startWorld({ mode, pods: 4, base, flags: { "connect-retries": String(retries) } });
  try {
    const result = await killUnderLoad(world, { staleMs, clients: CLIENTS });
    log(`failover ${mode}, ${retries} retries: ${result.load.sent} requests, ${result.failedAfterKill} failed after the kill (+${result.load.failed - result.failedAfterKill} in flight), ${result.attemptsOnDead} tried on the dead pod`);
    return { mode, retries, ...result };
  } finally {
    await world.stop();
  }
}

interface CostRun {
  readonly endpoints: number;
  readonly healthCheck: boolean;
  readonly windowMs: number;
  /** HAProxy's CPU time over the window, in ms (user + system, every thread of the worker). */
  readonly cpuMs: number;
}

// Linux reports process times in USER_HZ, 100 per second on every architecture Node runs on.
const TICKS_PER_SECOND = 100;

/** CPU time of the master's children (the worker) in ms, from /proc/<pid>/stat. */
async function workerCpuMs(masterPid: number): Promise<number> {
  let ticks = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // Fields after the command name, which may hold spaces: state ppid … utime (14) stime (15).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) === masterPid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

async function cost(endpoints: number, healthCheck: boolean, windowMs: number, base: number, log: (line: string) => void): Promise<CostRun> {
  const world = await startWorld({ mode: "tcp", pods: endpoints, base, flags: { "health-check": String(healthCheck) } });
  try {
    await sleep(1_000); // the first checks are spread over one interval
    const before = await workerCpuMs(world.haproxy.pid);
    await sleep(windowMs);
    const cpuMs = (await workerCpuMs(world.haproxy.pid)) - before;
    log(`failover cost: ${endpoints} endpoints, health checks ${healthCheck ? "on" : "off"}: HAProxy ${Math.round(cpuMs)} ms CPU in ${windowMs} ms`);
    return { endpoints, healthCheck, windowMs, cpuMs };
  } finally {
    await world.stop();
  }
}

export const failoverScenario: Scenario = {
  name: "failover",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const staleMs = context.quick ? 700 : 5_000;
    const endpoints = context.quick ? 500 : 1_000;
    const windowMs = context.quick ? 1_500 : 10_000;
    const kills: KillRun[] = [];
    let base = 65;
    for (const mode of ["tcp", "http"] as const) {
      for (const retries of [0, 3]) kills.push(await kill(mode, retries, staleMs, base++, context.log));
    }
    const off = await cost(endpoints, false, windowMs, base++, context.log);
    const on = await cost(endpoints, true, windowMs, base++, context.log);

    const n = (x: number): string => x.toLocaleString("en-US");
    const killed = (r: KillRun): string => `${n(r.failedAfterKill)} of ${n(r.load.sent)} (${n(r.attemptsOnDead)} picked the dead pod)`;
    const rows = (["tcp", "http"] as const).map((mode) => {
      const [baseline, retried] = [0, 3].map((retries) => kills.find((r) => r.mode === mode && r.retries === retries)!);
      return [
        `${mode}: failed requests sent after a pod was killed, while it stayed ${staleMs / 1000} s in the slice`,
        killed(baseline!), killed(retried!),
        retried!.failedAfterKill === 0 ? "0: met" : "missed",
      ];
    });
    // CPU share of one core, and the added share scaled to 1,000 endpoints.
    const share = (r: CostRun): number => (100 * r.cpuMs) / r.windowMs;
    const perThousand = ((share(on) - share(off)) * 1000) / endpoints;
    rows.push([
      `HAProxy CPU, ${n(endpoints)} endpoints, health checks every 500 ms (${n(endpoints * 2)} checks/s)`,
      `${share(off).toFixed(1)} % of a core (off)`, `${share(on).toFixed(1)} % of a core (on)`,
      `+${perThousand.toFixed(1)} % of a core per 1,000 endpoints`,
    ]);
    return {
      title: "Failover: a pod killed before Kubernetes notices, and the cost of health checks",
      columns: ["measurement", "baseline (same run)", "with failover", "result"],
      rows,
      notes: [
        `Kill: 4 pods, ${CLIENTS} clients each opening a new connection per request; one pod's listener and connections are closed at once (as after a SIGKILL) and its endpoint stays ready in the slice for ${staleMs / 1000} s, then leaves it. Baseline: --connect-retries 0 (a failed connection fails the request, as behind kube-proxy); with failover: the default --connect-retries 3 with \`option redispatch 1\` (each retry on another endpoint). The requests a pod was serving when it died are lost with it behind any proxy; they are counted apart (${kills.map((r) => `${r.mode}/${r.retries}: ${r.load.failed - r.failedAfterKill}`).join(", ")}).`,
        `Cost: HAProxy's worker CPU time (user + system, all threads, from /proc) over ${windowMs / 1000} s with ${n(endpoints)} endpoints, health checks off vs \`kube-haproxy.io/health-check: "true"\` (a TCP connect to every endpoint every 500 ms); the pods answering the checks run in the bench's own process and are not counted.`,
      ],
      json: { staleMs, clients: CLIENTS, kills, cost: { off, on, percentOfCorePerThousandEndpoints: perThousand } },
    };
  },
};
