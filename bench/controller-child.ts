// The controller alone, in a process of its own, for bench/controller-cost.ts (which keeps the
// fake API server and HAProxy in its own process and reads this one's figures as JSON lines on
// stdout). Not a scenario: run by controller-cost.ts as
//
//   node bench/controller-child.ts '{"mode":"startup"|"sidecar","dir":…,"kubeconfig":…,"slots":16}'
//
// startup: ClusterWatch + Proxier + render, as `kube-haproxy render` does: both initial lists,
//          translation of everything, the bootstrap configuration written to <dir>/haproxy.cfg.
//          One line: phase times, CPU, RSS now and peak (process.resourceUsage().maxRSS).
// sidecar: the full sidecar (startSidecar) against the HAProxy the parent started from that
//          configuration. Prints {"ready":…} once started and synced (with the time and RSS when
//          both lists were in and translated, before the first sync), then reads one line
//          `expect <backend> <ip>` from stdin, answers {"armed":true}, and measures CPU and wall
//          time until the engine applied <ip> ready in <backend> and is synced; prints the
//          result line and exits.
//          With KUBE_HAPROXY_BENCH_CPU_PROFILE=<file>, the changes (armed → applied) are CPU
//          profiled through node:inspector and written there (.cpuprofile; bench/PROFILE.md).

import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { createInterface } from "node:readline";
import { getHeapStatistics } from "node:v8";
import { clusterWatch, renderOptions, translateOptions } from "../src/compose.ts";
import { loadKubeConfig } from "../src/kube/kubeconfig.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { renderConfig } from "../src/haproxy/render.ts";
import { silentLogger } from "../src/log.ts";
import { Proxier } from "../src/proxier.ts";
import { startSidecar } from "../src/sidecar.ts";
import { appliedIps, fastOptions, nextApplied } from "../src/sim/world.ts";

interface ChildArgs {
  readonly mode: "startup" | "sidecar";
  readonly dir: string;
  readonly kubeconfig: string;
  readonly slots: number;
}

const say = (line: unknown): void => void process.stdout.write(JSON.stringify(line) + "\n");
const cpuMs = (since?: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
};
/** Heap and RSS after a full garbage collection (the child runs with --expose-gc): what is retained. */
const retained = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return { retainedHeapMb: process.memoryUsage().heapUsed / 2 ** 20, rssAfterGcMb: process.memoryUsage().rss / 2 ** 20 };
};
const memory = () => ({ rssMb: process.memoryUsage().rss / 2 ** 20, heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20, maxRssMb: process.resourceUsage().maxRSS / 1024, ...limits() });
/** The memory limit Node found (a cgroup's, as a Pod's container has; 0: none) and the heap limit V8 chose from it. */
const limits = () => {
  const limit = process.constrainedMemory(); // 0 or 2^64 - 1 when there is none, by Node version
  return { constrainedMb: limit === 0 || limit >= 2 ** 60 ? 0 : limit / 2 ** 20, heapLimitMb: getHeapStatistics().heap_size_limit / 2 ** 20 };
};

/** The kubeconfig loaded before the clock starts, as `run` and `render` do (commands/api-wait.ts); how long it took. */
function preload(kubeconfig: string): number {
  const t = performance.now();
  loadKubeConfig(kubeconfig, {});
  return performance.now() - t;
}

async function startup(args: ChildArgs): Promise<void> {
  const options = fastOptions(args.dir, args.kubeconfig, args.slots);
  const kubeconfigLoadMs = preload(args.kubeconfig);
  const idleRssMb = process.memoryUsage().rss / 2 ** 20;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const watch = clusterWatch(options, silentLogger, {});
  const proxier = new Proxier({ setBackend() {}, deleteBackend() {} }, translateOptions(options), silentLogger);
  watch.on("service", proxier.onService);
  watch.on("endpointslice", proxier.onEndpointSlice);
  await watch.start();
  const t1 = performance.now();
  proxier.start();
  const backends = proxier.backends();
  const t2 = performance.now();
  await writeFile(options.config, renderConfig(backends.map((backend) => layoutBackend(backend)), renderOptions(options)));
  const t3 = performance.now();
  const cpu = cpuMs(cpu0);
  // Still holding the informer caches and the proxier's model, as the running sidecar does.
  const held = { ...memory(), ...retained() };
  await watch.stop();
  say({ backends: backends.length, kubeconfigLoadMs, listsMs: t1 - t0, translateMs: t2 - t1, renderMs: t3 - t2, totalMs: t3 - t0, cpuMs: cpu, idleRssMb, ...held });
}

async function sidecar(args: ChildArgs): Promise<void> {
  const options = fastOptions(args.dir, args.kubeconfig, args.slots);
  preload(args.kubeconfig);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const car = startSidecar(options, { log: silentLogger, env: {} });
  try {
    await car.started;
    const listed = { listedMs: performance.now() - t0, listedRssMb: process.memoryUsage().rss / 2 ** 20, listedMaxRssMb: process.resourceUsage().maxRSS / 1024 };
    await car.dataplane.whenSynced();
    say({ ready: true, startupMs: performance.now() - t0, sinceProcessStartMs: performance.now(), startupCpuMs: cpuMs(cpu0), ...listed, ...memory() });
    const lines = createInterface({ input: process.stdin });
    const line = await new Promise<string>((resolve) => lines.once("line", resolve));
    lines.close();
    const [, backend, ip] = line.split(" ") as [string, string, string];
    const done = nextApplied(car, backend, () => appliedIps(car, backend, "ready").includes(ip), 300_000);
    const profile = await startProfile(process.env.KUBE_HAPROXY_BENCH_CPU_PROFILE);
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    say({ armed: true });
    await done;
    await car.dataplane.whenSynced();
    const wallMs = performance.now() - w0;
    const cpu = cpuMs(c0);
    await profile?.();
    say({ wallMs, cpuMs: cpu, ...memory(), ...retained() });
  } finally {
    await car.stop();
  }
}

/** Starts the V8 CPU profiler; the returned function stops it and writes the profile to `file`. */
async function startProfile(file: string | undefined): Promise<(() => Promise<void>) | undefined> {
  if (!file) return undefined;
  const session = new Session();
  session.connect();
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  };
}

const args = JSON.parse(process.argv[2] ?? "{}") as ChildArgs;
(args.mode === "startup" ? startup(args) : sidecar(args)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`controller-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
