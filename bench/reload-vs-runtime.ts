// The same workload both ways against one HAProxy, under HTTP load:
//   (a) runtime: K endpoint changes through the API server → sidecar → runtime API; per change
//       the time from the API write to the engine's "applied" for the backend
//   (b) reload per change: the sidecar stopped, then K changes each rendered into the whole
//       configuration and applied by a master-CLI reload (lib/reload-baseline.ts)
// Each change adds or removes one extra (listening) pod, alternately.

import { setTimeout as sleep } from "node:timers/promises";
import { reloadsSoFar } from "./lib/master-cli.ts";
import type { Endpoint } from "../src/model.ts";
import { renderOptions } from "../src/compose.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { startPod } from "../src/sim/pods.ts";
import { filledBackend, reloadPerChange } from "./lib/reload-baseline.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs, summarize } from "./lib/stats.ts";
import { startLoad, type LoadResult } from "../src/sim/load.ts";
import { appliedIps, nextApplied, startWorld } from "../src/sim/world.ts";

export const reloadVsRuntimeScenario: Scenario = {
  name: "reload-vs-runtime",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const changes = context.quick ? 10 : 50;
    const world = await startWorld({ mode: "http", pods: 4, base: 62 });
    let runtime: { samples: number[]; load: LoadResult; reloads: number };
    let reload: { samples: number[]; load: LoadResult; reloads: number };
    try {
      const extra = await startPod("127.62.200.1", world.pods[0]!.port);
      try {
        const base = world.pods.map((p) => ({ ip: p.ip }));
        // (a) runtime path
        let before = await reloadsSoFar(world.haproxy.masterSocket);
        let load = startLoad(world.url);
        const samples: number[] = [];
        for (let i = 0; i < changes; i++) {
          const add = i % 2 === 0;
          const done = nextApplied(world.sidecar, world.backend, () => appliedIps(world.sidecar, world.backend, "ready").includes(extra.ip) === add);
          const t0 = performance.now();
          world.setEndpoints(add ? [...base, { ip: extra.ip }] : base);
          samples.push((await done) - t0);
          await sleep(50); // let the load run between changes, as between reloads
        }
        runtime = { samples, load: await load.stop(), reloads: (await reloadsSoFar(world.haproxy.masterSocket)) - before };
        context.log(`reload-vs-runtime: runtime done (${runtime.load.sent} requests)`);

        // (b) reload per change, the sidecar out of the way
        const model = world.sidecar.proxier.backends().find((b) => b.name === world.backend);
        if (!model) throw new Error(`no backend ${world.backend}`);
        const slots = layoutBackend(model).slots;
        const others = world.sidecar.proxier.backends().filter((b) => b.name !== world.backend).map((b) => layoutBackend(b));
        await world.sidecar.stop();
        const endpoint = (ip: string): Endpoint => ({ ip, port: world.pods[0]!.port, state: "ready" });
        const configs = Array.from({ length: changes }, (_, i) => {
          const ips = i % 2 === 0 ? [...base.map((b) => b.ip), extra.ip] : base.map((b) => b.ip);
          return [...others, filledBackend(model, slots, ips.map(endpoint))];
        });
        before = await reloadsSoFar(world.haproxy.masterSocket);
        load = startLoad(world.url);
        const reloadSamples = await reloadPerChange(configs, { haproxy: world.haproxy, render: renderOptions(world.options) });
        reload = { samples: reloadSamples, load: await load.stop(), reloads: (await reloadsSoFar(world.haproxy.masterSocket)) - before };
      } finally {
        await extra.stop();
      }
    } finally {
      await world.stop();
    }
    const r = summarize(runtime.samples);
    const b = summarize(reload.samples);
    const line = (name: string, s: ReturnType<typeof summarize>, x: typeof runtime): string[] => [
      name, String(s.count), formatMs(s.p50), formatMs(s.p99), String(x.reloads), x.load.sent.toLocaleString("en-US"), String(x.load.failed),
    ];
    return {
      title: `Runtime API vs reload per change (${changes} endpoint changes, http mode, under load)`,
      columns: ["path", "changes", "p50 / change", "p99 / change", "reloads", "requests sent", "requests failed"],
      rows: [line("runtime API (API write → applied)", r, runtime), line("reload per change (render → new worker answers)", b, reload)],
      notes: [
        `reload / runtime: p50 ${(b.p50 / r.p50).toFixed(1)}×, p99 ${(b.p99 / r.p99).toFixed(1)}×.`,
        `Load: 3 clients on new connections + 3 keep-alive clients (node:http) against the Service frontend during each phase.`,
        ...[runtime, reload].filter((x) => x.load.failed > 0).map((x) => `errors: ${x.load.errors.join("; ")}`),
      ],
      json: { changes, runtime: { summary: r, ...runtime }, reload: { summary: b, ...reload }, ratio: { p50: b.p50 / r.p50, p99: b.p99 / r.p99 } },
    };
  },
};
