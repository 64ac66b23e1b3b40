// Zero failed requests during churn: HTTP load through HAProxy while pods are replaced at a
// steady rate, as a Deployment's rolling update does. One replacement: a new pod starts and is
// added ready, the oldest pod is marked terminating (ready:false, serving:true, terminating:true
// → drain) in the same slice write; ~1 s later it is deleted from the slice; once the engine
// applied that, the pod gets its "SIGTERM": it stops like a real application (lib/pod.ts) —
// stops accepting, finishes what is in flight, answers the next request on each open keep-alive
// connection with `Connection: close`, and destroys what is still idle after the grace period.
//
// tcp and http mode are run and reported separately, and failures are counted per kind of
// client (a new connection per request, or one keep-alive connection).

import { setTimeout as sleep } from "node:timers/promises";
import { reloadsSoFar } from "./lib/master-cli.ts";
import type { PodEndpoint } from "../src/sim/objects.ts";
import { startGracefulPod, type GracefulPod, type StopReport } from "../src/sim/graceful-pod.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { startLoad, type LoadResult } from "../src/sim/load.ts";
import { appliedIps, nextApplied, startWorld } from "../src/sim/world.ts";

/** The pod's grace period after its "SIGTERM" (Kubernetes' default is 30 s). */
const GRACE_MS = 2_000;

interface ChurnResult {
  readonly mode: "tcp" | "http";
  readonly seconds: number;
  readonly rate: number;
  readonly replacements: number;
  readonly reloads: number;
  readonly load: LoadResult;
  /** Over all stopped pods: connections closed after a `Connection: close` answer / at grace end. */
  readonly closedAfterResponse: number;
  readonly closedAtGraceEnd: number;
}

async function churn(mode: "tcp" | "http", seconds: number, rate: number, base: number, log: (line: string) => void): Promise<ChurnResult> {
  const world = await startWorld({ mode, pods: 4, base, slots: Math.max(32, rate * 4) });
  const extraPods: GracefulPod[] = [];
  const stops: StopReport[] = [];
  try {
    const live: GracefulPod[] = [...world.pods];
    const terminating = new Set<GracefulPod>();
    const write = (): void =>
      world.setEndpoints([
        ...live.map((p): PodEndpoint => ({ ip: p.ip })),
        ...[...terminating].map((p): PodEndpoint => ({ ip: p.ip, ready: false, serving: true, terminating: true })),
      ]);
    const before = await reloadsSoFar(world.haproxy.masterSocket);
    const load = startLoad(world.url);
    const retirements: Promise<void>[] = [];
    let replacements = 0;
    let next = 1000;
    const started = performance.now();
    for (let i = 0; performance.now() - started < seconds * 1000; i++) {
      const fresh = await startGracefulPod(`127.${base}.${Math.floor(next / 250) % 250}.${(next % 250) + 1}`, world.pods[0]!.port);
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
        stops.push(await old.stop(GRACE_MS));
      })());
      const due = started + ((i + 1) * 1000) / rate;
      await sleep(Math.max(0, due - performance.now()));
    }
    await Promise.all(retirements);
    await sleep(200);
    const result = await load.stop();
    const reloads = (await reloadsSoFar(world.haproxy.masterSocket)) - before;
    log(`churn ${mode}: ${replacements} replacements, ${result.sent} requests, ${result.newConnection.failed} + ${result.keepAlive.failed} failed (new connection + keep-alive), ${reloads} reloads`);
    const sum = (key: keyof StopReport): number => stops.reduce((n, s) => n + s[key], 0);
    return { mode, seconds, rate, replacements, reloads, load: result, closedAfterResponse: sum("closedAfterResponse"), closedAtGraceEnd: sum("closedAtGraceEnd") };
  } finally {
    await world.stop();
    await Promise.all(extraPods.map((p) => p.stop(500)));
  }
}

export const churnScenario: Scenario = {
  name: "churn",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const seconds = context.quick ? 5 : 30;
    const rate = context.quick ? 5 : 20;
    const results: ChurnResult[] = [];
    results.push(await churn("tcp", seconds, rate, 64, context.log));
    results.push(await churn("http", seconds, rate, 63, context.log));
    const n = (x: number): string => x.toLocaleString("en-US");
    return {
      title: `Pod churn under load (${seconds} s at ${rate} replacements/s, pods stop gracefully)`,
      columns: ["mode", "replacements", "new-connection requests (failed)", "keep-alive requests (failed)", "pod conns closed after `Connection: close`", "closed at grace end", "reloads", "target"],
      rows: results.map((r) => [
        r.mode, String(r.replacements),
        `${n(r.load.newConnection.sent)} (${r.load.newConnection.failed})`, `${n(r.load.keepAlive.sent)} (${r.load.keepAlive.failed})`,
        String(r.closedAfterResponse), String(r.closedAtGraceEnd), String(r.reloads),
        r.load.failed === 0 && r.reloads === 0 ? "met" : "missed",
      ]),
      notes: [
        "Replacement: new pod ready + old pod terminating (drain) in one slice write; the old pod deleted from the slice 1 s later; once the engine applied the deletion the pod stops like an application on SIGTERM: stops accepting, lets in-flight requests finish, answers the next request on each open keep-alive connection with `Connection: close` and closes it; connections still idle after " + `${GRACE_MS / 1000} s are destroyed ("closed at grace end").`,
        "Load: 3 clients opening a new connection per request + 3 keep-alive clients (node:http, one connection each while it lasts). Target: 0 failed of either kind, 0 reloads.",
        "In tcp mode a keep-alive client's connection runs through HAProxy to one pod and lives as long as that pod keeps it: the pod's `Connection: close` makes the client open a new connection, which HAProxy sends to a ready pod. In http mode HAProxy owns the client connection and picks a server per request.",
        ...results.filter((r) => r.load.failed > 0).map((r) => `${r.mode} errors: new connection: ${r.load.newConnection.errors.join("; ") || "–"}; keep-alive: ${r.load.keepAlive.errors.join("; ") || "–"}`),
      ],
      json: { graceMs: GRACE_MS, runs: results },
    };
  },
};
