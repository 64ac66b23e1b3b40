// Single-change latency through the whole path: API write → informer → proxier → engine →
// HAProxy runtime API → first request served by the new pod.
//
//   one Service (tcp), N loopback pods, one more pod started up front but not in the slice
//   per sample: upsert the slice with the extra pod (trigger time = now), t0 = performance.now()
//     (a)  t0 → engine "applied" for the backend with the new pod's slot ready  (HAProxy acked)
//     (b)  t0 → first HTTP GET (new connection each) answered by the new pod via HAProxy
//     (b') t0 → `show servers state` (own connection, polled) shows the new pod's slot ready
//   (a), (b), (b') run concurrently in each sample; then the pod is removed again (applied) and
//   a short pause precedes the next sample.

import { setTimeout as sleep } from "node:timers/promises";
import { showServersState } from "../src/haproxy/commands.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { get, startPod } from "../src/sim/pods.ts";
import { rawCommand } from "./lib/raw-socket.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs, summarize, type Summary } from "./lib/stats.ts";
import { cdfSvg } from "./lib/svg.ts";
import { appliedIps, nextApplied, startWorld } from "./lib/world.ts";

export const latencyScenario: Scenario = {
  name: "latency",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const samples = context.quick ? 50 : 500;
    const podCount = 4;
    const world = await startWorld({ mode: "tcp", pods: podCount, base: 61 });
    const ack: number[] = [];
    const firstRequest: number[] = [];
    const requestsNeeded: number[] = [];
    const stateReady: number[] = [];
    const triggerToApplied: number[] = [];
    const onApplied = (name: string, triggerTime: number | undefined, at: number): void => {
      if (name === world.backend && triggerTime !== undefined && adding) triggerToApplied.push(at - triggerTime);
    };
    let adding = false;
    try {
      const extra = await startPod("127.61.200.1", world.pods[0]!.port);
      try {
        const base = world.pods.map((p) => ({ ip: p.ip }));
        for (let i = 0; i < samples + 1; i++) {
          // (a)
          const acked = nextApplied(world.sidecar, world.backend, () => appliedIps(world.sidecar, world.backend, "ready").includes(extra.ip));
          adding = i > 0;
          if (i === 1) world.sidecar.engine.on("applied", onApplied);
          const t0 = performance.now();
          world.setEndpoints([...base, { ip: extra.ip }]);
          // (b): requests until the new pod answers
          const probe = (async (): Promise<[number, number]> => {
            for (let n = 1; ; n++) {
              const who = await get(world.url, 2_000).catch(() => "");
              if (who === extra.ip) return [performance.now() - t0, n];
              if (performance.now() - t0 > 10_000) throw new Error("the new pod never answered");
            }
          })();
          // (b'): the slot ready in `show servers state`
          const state = (async (): Promise<number> => {
            for (;;) {
              const text = await rawCommand(world.haproxy.runtimeSocket, showServersState(world.backend).line);
              if (parseServersState(text).some((r) => r.address === extra.ip && stateOf(r) === "ready")) return performance.now() - t0;
              if (performance.now() - t0 > 10_000) throw new Error("the slot never became ready");
            }
          })();
          const [ackAt, [probeMs, n], stateMs] = await Promise.all([acked, probe, state]);
          if (i > 0) {
            // i = 0 is a warm-up
            ack.push(ackAt - t0);
            firstRequest.push(probeMs);
            requestsNeeded.push(n);
            stateReady.push(stateMs);
          }
          adding = false;
          const removed = nextApplied(world.sidecar, world.backend, () => !appliedIps(world.sidecar, world.backend, "ready").includes(extra.ip));
          world.setEndpoints(base);
          await removed;
          await sleep(20);
          if (i % 50 === 0) context.log(`latency: ${i}/${samples}`);
        }
      } finally {
        world.sidecar.engine.off("applied", onApplied);
        await extra.stop();
      }
    } finally {
      await world.stop();
    }
    const series = {
      ack: summarize(ack),
      stateReady: summarize(stateReady),
      firstRequest: summarize(firstRequest),
      triggerToApplied: summarize(triggerToApplied),
    };
    const row = (name: string, s: Summary, targetMs?: number): string[] => [name, String(s.count), formatMs(s.p50), formatMs(s.p90), formatMs(s.p99), formatMs(s.max), targetMs === undefined ? "–" : `≤ ${targetMs} ms`, targetMs === undefined ? "–" : s.p99 <= targetMs ? "met" : "missed"];
    const req = summarize(requestsNeeded);
    return {
      title: `Single-change latency, API write → HAProxy (1 Service, ${podCount}+1 pods, tcp)`,
      columns: ["measure", "samples", "p50", "p90", "p99", "max", "target p99", "p99 vs target"],
      rows: [
        row("(a) API write → engine applied (HAProxy ack)", series.ack, 1),
        row("(b') API write → `show servers state` ready", series.stateReady),
        row("(b) API write → first request served by new pod", series.firstRequest, 2),
        row("trigger-time annotation → applied (Date.now, ms resolution)", series.triggerToApplied),
      ],
      notes: [
        `(a), (b), (b') run concurrently in each sample (on one event loop, so they slow each other somewhat); a warm-up sample is dropped; the pod is removed (applied) before the next sample.`,
        `(b) sends GETs on new connections one after the other until the new pod answers: roundrobin over ${podCount + 1} servers needed p50 ${req.p50} / p99 ${req.p99} / max ${req.max} requests, so (b) includes up to ${podCount} requests to the old pods after the slot became ready.`,
      ],
      json: { samples, pods: podCount, summaries: series, requestsNeeded: req, raw: { ack, stateReady, firstRequest, triggerToApplied } },
      files: {
        "latency-cdf.svg": cdfSvg(
          [
            { name: "(a) applied (HAProxy ack)", samples: ack },
            { name: "(b') show servers state ready", samples: stateReady },
            { name: "(b) first request by new pod", samples: firstRequest },
          ],
          { title: "API write → HAProxy, single endpoint change", xLabel: "latency (ms)" },
        ),
      },
    };
  },
};
