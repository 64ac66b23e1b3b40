// Zero failed requests during churn: HTTP load through HAProxy while pods are replaced at a
// steady rate. One replacement: a new pod starts and is added ready, the oldest pod is marked
// terminating (ready:false, serving:true, terminating:true → drain) in the same slice write;
// ~1 s later it is deleted from the slice; once the engine applied that, its server stops.

import { setTimeout as sleep } from "node:timers/promises";
import { reloadCount } from "../src/haproxy/master.ts";
import type { PodEndpoint } from "../src/sim/objects.ts";
import { startPod, type Pod } from "../src/sim/pods.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { appliedIps, nextApplied, startLoad, startWorld, type LoadResult } from "./lib/world.ts";

interface ChurnResult {
  readonly mode: "tcp" | "http";
  readonly seconds: number;
  readonly rate: number;
  readonly replacements: number;
  readonly reloads: number;
  readonly load: LoadResult;
}

async function churn(mode: "tcp" | "http", seconds: number, rate: number, base: number, log: (line: string) => void): Promise<ChurnResult> {
  const world = await startWorld({ mode, pods: 4, base, slots: Math.max(32, rate * 4) });
  const extraPods: Pod[] = [];
  try {
    const live: Pod[] = [...world.pods];
    const terminating = new Set<Pod>();
    const write = (): void =>
      world.setEndpoints([
        ...live.map((p): PodEndpoint => ({ ip: p.ip })),
        ...[...terminating].map((p): PodEndpoint => ({ ip: p.ip, ready: false, serving: true, terminating: true })),
      ]);
    const before = await reloadCount(world.haproxy.masterSocket);
    const load = startLoad(world.url);
    const retirements: Promise<void>[] = [];
    let replacements = 0;
    let next = 1000;
    const started = performance.now();
    for (let i = 0; performance.now() - started < seconds * 1000; i++) {
      const fresh = await startPod(`127.${base}.${Math.floor(next / 250) % 250}.${(next % 250) + 1}`, world.pods[0]!.port);
      next++;
      extraPods.push(fresh);
      const old = live.shift()!;
      live.push(fresh);
      terminating.add(old);
      write();
      replacements++;
      retirements.push((async () => {
        await sleep(1000);
        terminating.delete(old);
        const gone = nextApplied(world.sidecar, world.backend, () => ![...appliedIps(world.sidecar, world.backend, "ready"), ...appliedIps(world.sidecar, world.backend, "drain")].includes(old.ip));
        write();
        await gone;
        await old.stop();
      })());
      const due = started + ((i + 1) * 1000) / rate;
      await sleep(Math.max(0, due - performance.now()));
    }
    await Promise.all(retirements);
    await sleep(200);
    const result = await load.stop();
    const reloads = (await reloadCount(world.haproxy.masterSocket)) - before;
    log(`churn ${mode}: ${replacements} replacements, ${result.sent} requests, ${result.failed} failed, ${reloads} reloads`);
    return { mode, seconds, rate, replacements, reloads, load: result };
  } finally {
    await world.stop();
    await Promise.all(extraPods.map((p) => p.stop()));
  }
}

export const churnScenario: Scenario = {
  name: "churn",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const seconds = context.quick ? 5 : 30;
    const rate = context.quick ? 5 : 20;
    const results: ChurnResult[] = [];
    results.push(await churn("http", seconds, rate, 63, context.log));
    results.push(await churn("tcp", seconds, rate, 64, context.log));
    return {
      title: `Pod churn under load (${seconds} s at ${rate} replacements/s)`,
      columns: ["mode", "replacements", "requests sent", "requests failed", "reloads", "target"],
      rows: results.map((r) => [r.mode, String(r.replacements), r.load.sent.toLocaleString("en-US"), String(r.load.failed), String(r.reloads), r.load.failed === 0 && r.reloads === 0 ? "met" : "missed"]),
      notes: [
        "Replacement: new pod ready + old pod terminating (drain) in one slice write; the old pod deleted from the slice 1 s later; its server stopped once the engine applied the deletion.",
        "Load: 3 clients on new connections + 3 keep-alive clients (node:http). Target: 0 failed, 0 reloads.",
        ...results.filter((r) => r.load.failed > 0).map((r) => `${r.mode} errors: ${r.load.errors.join("; ")}`),
      ],
      json: { runs: results },
    };
  },
};
