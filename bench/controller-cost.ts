// The controller's own cost, measured in a child process (controller-child.ts) that holds only
// the controller; the fake API server (with every object) and HAProxy live elsewhere — the API
// server in this process, HAProxy in its own:
//
//   1. startup child: initial lists + translation + render of N Service ports (10 endpoints
//      each); its CPU time, RSS while holding everything, and peak RSS (resourceUsage().maxRSS)
//   2. sidecar child: the full sidecar against a real HAProxy started from that configuration;
//      its startup (lists, first full sync of every slot) and then K slice changes written here
//      to the API server: CPU ms of the child per 1,000 changes, wall time, peak RSS.
//   3. raw socket: when the changes replaced every Service's endpoints, the same replacement
//      once more as bare runtime commands pipelined over one socket (bench/lib/raw-socket.ts):
//      the end-to-end path (API write → watch → translation → data plane → HAProxy) against
//      the least HAProxy itself needs for that work (issue 14: ≥ 0.6× the raw socket).

import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { startHaproxy } from "../src/sim/haproxy.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { setServerAddr, setServerState, showServersState } from "../src/haproxy/commands.ts";
import { slotName } from "../src/haproxy/names.ts";
import { parseServersState } from "../src/haproxy/servers-state.ts";
import { reloadsSoFar } from "./lib/master-cli.ts";
import { rawCommand, rawSocketRun } from "./lib/raw-socket.ts";
import { listenablePorts, retryOnBindConflict } from "./lib/ports.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs } from "./lib/stats.ts";
import { createMemoryCgroup, type MemoryCgroup } from "./lib/memory-cgroup.ts";

const PER_SERVICE = 10;
const SLOTS = 16;
/** deploy/base/daemonset.yaml: the kube-haproxy container's (and the render init container's) memory limit. */
const POD_LIMIT_MB = 512;
const CHILD = join(dirname(fileURLToPath(import.meta.url)), "controller-child.ts");
const ip = (s: number, j: number, gen = 0): string => {
  const g = s * PER_SERVICE + j;
  return `127.${250 + (gen % 4)}.${Math.floor(g / 250) % 250}.${(g % 250) + 1}`;
};

// The fields a real API server adds to what kubectl and the EndpointSlice controller write:
// managedFields, owner references, kubectl's last-applied annotation, a targetRef, node and
// zone per endpoint. A slice of 10 endpoints is then ~3.8 KB of JSON (~1.3 KB without), as in
// `kubectl get endpointslice -o json`; what the controller keeps of it is its own choice.
const TIME = "2026-12-01T00:00:00Z";
function asServedService(service: V1Service): void {
  const name = service.metadata!.name!;
  service.metadata!.annotations = { "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: "default", labels: service.metadata!.labels }, spec: { selector: { app: name }, ports: service.spec!.ports } }) + "\n" };
  service.metadata!.managedFields = [{
    manager: "kubectl-client-side-apply", operation: "Update", apiVersion: "v1", time: TIME as never, fieldsType: "FieldsV1",
    fieldsV1: { "f:metadata": { "f:annotations": { ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {} }, "f:labels": { ".": {}, "f:kube-haproxy.io/expose": {} } }, "f:spec": { "f:internalTrafficPolicy": {}, "f:ports": { ".": {}, [`k:{"port":${service.spec!.ports![0]!.port},"protocol":"TCP"}`]: { ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {} } }, "f:selector": {}, "f:sessionAffinity": {}, "f:type": {} } },
  }];
  Object.assign(service.spec!, { clusterIPs: [service.spec!.clusterIP!], ipFamilies: ["IPv4"], ipFamilyPolicy: "SingleStack", internalTrafficPolicy: "Cluster", selector: { app: name }, sessionAffinity: "None" });
  service.spec!.ports = service.spec!.ports!.map((port) => ({ ...port, targetPort: 8080 }));
  service.status = { loadBalancer: {} };
}
function asServedSlice(slice: V1EndpointSlice): void {
  const service = slice.metadata!.labels!["kubernetes.io/service-name"]!;
  Object.assign(slice.metadata!, {
    generateName: `${service}-`, generation: 1,
    ownerReferences: [{ apiVersion: "v1", kind: "Service", name: service, uid: randomUUID(), controller: true, blockOwnerDeletion: true }],
    managedFields: [{
      manager: "kube-controller-manager", operation: "Update", apiVersion: "discovery.k8s.io/v1", time: TIME, fieldsType: "FieldsV1",
      fieldsV1: { "f:addressType": {}, "f:endpoints": {}, "f:metadata": { "f:annotations": { ".": {}, "f:endpoints.kubernetes.io/last-change-trigger-time": {} }, "f:generateName": {}, "f:labels": { ".": {}, "f:endpointslice.kubernetes.io/managed-by": {}, "f:kubernetes.io/service-name": {} }, "f:ownerReferences": { ".": {}, [`k:{"uid":"${randomUUID()}"}`]: {} } }, "f:ports": {} },
    }],
  });
  slice.endpoints!.forEach((endpoint, j) => {
    Object.assign(endpoint, { nodeName: `node-${j % 3}`, zone: `zone-${j % 3}`, targetRef: { kind: "Pod", namespace: "default", name: `${service}-7d9f8c6b5-${randomUUID().slice(0, 5)}`, uid: randomUUID() } });
  });
}

/** A running controller-child: its stdout JSON lines, one at a time. */
class Child {
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #stderr = "";
  #exit: Promise<number | null>;

  constructor(args: Record<string, unknown>, cgroup?: MemoryCgroup) {
    const argv = ["--expose-gc", CHILD, JSON.stringify(args)];
    const options: SpawnOptions = { stdio: "pipe" };
    this.#child = cgroup ? cgroup.spawn(process.execPath, argv, options) : spawn(process.execPath, argv, options);
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      this.#lines.push(line);
      this.#wake?.();
    });
    this.#child.stderr!.on("data", (chunk) => (this.#stderr += chunk));
    this.#exit = new Promise((resolve) => this.#child.once("exit", (code) => {
      resolve(code);
      this.#wake?.();
    }));
  }

  async next<T>(timeoutMs = 600_000): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) throw new Error(`controller child exited (${this.#child.exitCode ?? this.#child.signalCode}) without an answer:\n${this.#stderr}`);
      if (performance.now() > deadline) throw new Error(`controller child: no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return JSON.parse(this.#lines.shift()!) as T;
  }

  send(line: string): void {
    this.#child.stdin!.write(`${line}\n`);
  }

  /** Waits for the exit (or kills the child, by its pid, after `ms`). */
  async done(ms = 30_000): Promise<void> {
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), ms);
    const code = await this.#exit;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`controller child exited with ${code}:\n${this.#stderr}`);
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
  }
}

interface StartupFigures {
  backends: number; listsMs: number; translateMs: number; renderMs: number; totalMs: number; cpuMs: number;
  idleRssMb: number; rssMb: number; heapUsedMb: number; maxRssMb: number; retainedHeapMb: number; rssAfterGcMb: number;
}
/** What the child's Node found: the cgroup's memory limit (0: none) and the heap limit V8 chose from it. */
interface Limits { constrainedMb: number; heapLimitMb: number }
interface SidecarReady extends Limits {
  /** From the sidecar's start (modules loaded, kubeconfig read); `sinceProcessStartMs` from the process's own start. */
  startupMs: number; sinceProcessStartMs: number; startupCpuMs: number; rssMb: number; heapUsedMb: number; maxRssMb: number;
  /** When both lists were in and translated (before the data plane's first sync). */
  listedMs: number; listedRssMb: number; listedMaxRssMb: number;
}
interface SidecarDone extends Limits { wallMs: number; cpuMs: number; rssMb: number; heapUsedMb: number; maxRssMb: number; retainedHeapMb: number; rssAfterGcMb: number }

/** One round: Service ports, slice changes, and the children's memory limit (MiB) when the round models the Pod's. */
interface Round { services: number; changes: number; limitMb?: number }

interface CostRun {
  services: number;
  endpoints: number;
  /** The round's memory limit: applied (MiB), or why it could not be (the children then ran without one). */
  limit?: { mb: number } | { unavailable: string };
  startup: StartupFigures;
  cpu?: { changes: number; cpuMsPer1000: number; wallMs: number; haproxyStartMs: number; ready: SidecarReady; done: SidecarDone; reloads: number; raw?: RawReplace };
}

/** Every Service's endpoints replaced once more over the raw socket, after the sidecar exited. */
interface RawReplace { commands: number; rawMs: number; endToEndMs: number; ratio: number }

/**
 * The raw socket's version of "replace every endpoint": per Service, its 10 slots re-addressed
 * in place (`addr` + `state ready`, 20 commands), the least that puts 10 new endpoints in
 * service; checked afterwards in `show servers state`.
 */
async function rawReplace(socket: string, ports: readonly number[], services: number, gen: number, endToEndMs: number): Promise<RawReplace> {
  const lines: string[] = [];
  for (let s = 0; s < services; s++) {
    for (let j = 0; j < PER_SERVICE; j++) {
      const backend = `default:svc${s}:${ports[s]!}`;
      lines.push(setServerAddr(backend, slotName(j + 1), ip(s, j, gen), 8080).line, setServerState(backend, slotName(j + 1), "ready").line);
    }
  }
  const rawMs = await rawSocketRun(socket, lines, { timeoutMs: 300_000 });
  // Addresses repeat across Services (ip() wraps at 62,500): check each slot for its own.
  const wanted = new Map<string, string>();
  for (let s = 0; s < services; s++) for (let j = 0; j < PER_SERVICE; j++) wanted.set(`default:svc${s}:${ports[s]!}/${slotName(j + 1)}`, ip(s, j, gen));
  const applied = parseServersState(await rawCommand(socket, showServersState().line, 300_000)).filter((record) => wanted.get(`${record.backend}/${record.server}`) === record.address).length;
  if (applied !== wanted.size) throw new Error(`raw socket: ${applied} of ${wanted.size} slots hold their new address`);
  return { commands: lines.length, rawMs, endToEndMs, ratio: rawMs / endToEndMs };
}

async function cost({ services, changes, limitMb }: Round, log: (line: string) => void): Promise<CostRun> {
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-cost-"));
  const cluster = await startSimulatedCluster(dir);
  const children: Child[] = [];
  let stopHaproxy: (() => Promise<void>) | undefined;
  const made = limitMb === undefined ? undefined : createMemoryCgroup(limitMb * 2 ** 20);
  const cgroup = made && "path" in made ? made : undefined;
  const limit = limitMb === undefined ? undefined : cgroup ? { mb: limitMb } : { unavailable: (made as { unavailable: string }).unavailable };
  if (limit && "unavailable" in limit) log(`controller-cost: no ${limitMb} MiB memory limit (${limit.unavailable}); the children run without one`);
  try {
    const ports = await listenablePorts(services);
    const slice = (s: number, gen = 0) => makeSlice("default", `svc${s}`, `svc${s}-1`, Array.from({ length: PER_SERVICE }, (_, j) => ({ ip: ip(s, j, gen) })), [{ port: 8080 }], asServedSlice);
    for (let s = 0; s < services; s++) {
      cluster.api.upsert("services", makeService("default", `svc${s}`, [{ port: ports[s]! }], asServedService));
      cluster.api.upsert("endpointslices", slice(s));
    }
    const args = { dir, kubeconfig: cluster.kubeconfig, slots: SLOTS };
    const first = new Child({ ...args, mode: "startup" }, cgroup);
    children.push(first);
    const startup = await first.next<StartupFigures>();
    await first.done();
    log(`controller-cost: ${services} Service ports / ${services * PER_SERVICE} endpoints: lists + translate + render ${formatMs(startup.totalMs)}, peak RSS ${startup.maxRssMb.toFixed(0)} MB`);
    if (changes === 0) return { services, endpoints: services * PER_SERVICE, limit, startup };

    const h0 = performance.now();
    const haproxy = await startHaproxy({ dir, configPath: join(dir, "haproxy.cfg") });
    stopHaproxy = () => haproxy.stop();
    const haproxyStartMs = performance.now() - h0;
    log(`controller-cost: HAProxy with ${services} × ${SLOTS} slots started in ${formatMs(haproxyStartMs)}`);
    const before = await reloadsSoFar(haproxy.masterSocket);
    const second = new Child({ ...args, mode: "sidecar" }, cgroup);
    children.push(second);
    const ready = await second.next<SidecarReady>();
    log(`controller-cost: sidecar listed in ${formatMs(ready.listedMs)} (RSS ${ready.listedRssMb.toFixed(0)} MB), synced in ${formatMs(ready.startupMs)} (peak RSS ${ready.maxRssMb.toFixed(0)} MB)`);
    const last = (changes - 1) % services;
    const lastGen = 1 + Math.floor((changes - 1) / services);
    second.send(`expect default:svc${last}:${ports[last]} ${ip(last, 0, lastGen)}`);
    await second.next<{ armed: true }>();
    for (let i = 0; i < changes; i++) {
      cluster.api.upsert("endpointslices", slice(i % services, 1 + Math.floor(i / services)));
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    const done = await second.next<SidecarDone>();
    await second.done();
    const reloaded = (await reloadsSoFar(haproxy.masterSocket)) - before;
    log(`controller-cost: ${changes} changes applied in ${formatMs(done.wallMs)}, ${formatMs(done.cpuMs)} CPU`);
    // Only when the changes were one full round: every Service's endpoints replaced once.
    const raw = changes === services ? await rawReplace(join(dir, "runtime.sock"), ports, services, lastGen + 1, done.wallMs) : undefined;
    if (raw) log(`controller-cost: the same replacement over the raw socket: ${raw.commands} commands in ${formatMs(raw.rawMs)} (end to end ${raw.ratio.toFixed(2)}× raw)`);
    return { services, endpoints: services * PER_SERVICE, limit, startup, cpu: { changes, cpuMsPer1000: done.cpuMs * (1000 / changes), wallMs: done.wallMs, haproxyStartMs, ready, done, reloads: reloaded, raw } };
  } finally {
    for (const child of children) child.kill();
    await stopHaproxy?.();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
    await cgroup?.remove();
  }
}

/**
 * The rounds to run. By default the 100,000-endpoint round runs twice: as the host gives it
 * (V8 sized from 24 GiB of RAM) and under the sidecar container's memory limit in
 * deploy/base/daemonset.yaml (what a Pod gives it). KUBE_HAPROXY_BENCH_COST_ROUNDS picks others,
 * comma-separated SERVICES:CHANGES[:LIMIT_MIB], e.g. "10000:10000:512" while working on it.
 */
function costRounds(quick: boolean): Round[] {
  const chosen = process.env.KUBE_HAPROXY_BENCH_COST_ROUNDS;
  if (!chosen) {
    return quick
      ? [{ services: 1_000, changes: 1_000 }, { services: 1_000, changes: 1_000, limitMb: POD_LIMIT_MB }]
      : [{ services: 1_000, changes: 2_000 }, { services: 10_000, changes: 10_000 }, { services: 10_000, changes: 10_000, limitMb: POD_LIMIT_MB }];
  }
  return chosen.split(",").map((round) => {
    const [services, changes, limitMb] = round.split(":").map(Number);
    const ok = Number.isInteger(services) && Number.isInteger(changes) && services! >= 1 && changes! >= 0 && (limitMb === undefined || (Number.isInteger(limitMb) && limitMb >= 64));
    if (!ok) throw new TypeError(`KUBE_HAPROXY_BENCH_COST_ROUNDS: "${round}" is not SERVICES:CHANGES[:LIMIT_MIB] (a limit of at least 64)`);
    return { services: services!, changes: changes!, limitMb };
  });
}

/** Each issue 14 figure of one run, with its goal. */
function goalFigures(r: CostRun): string {
  const mb = (x: number): string => `${x.toFixed(0)} MB`;
  if (!r.cpu) return `render peak RSS ${mb(r.startup.maxRssMb)} (the sidecar was not run)`;
  const peak = Math.max(r.cpu.ready.maxRssMb, r.cpu.done.maxRssMb);
  const limit = r.limit === undefined ? "no memory limit" : "mb" in r.limit ? `under a ${r.limit.mb} MiB memory limit (V8's heap limit ${mb(r.cpu.ready.heapLimitMb)}, Node saw ${mb(r.cpu.ready.constrainedMb)})` : `meant to be under a memory limit, but without one (${r.limit.unavailable})`;
  const figures = [
    `${limit}: sidecar peak RSS ${mb(peak)} (goal ≤ 256 MB)`,
    `start → first full sync ${formatMs(r.cpu.ready.startupMs)} (${formatMs(r.cpu.ready.sinceProcessStartMs)} from the process's start, its modules and the kubeconfig included; goal ≤ 2 s; both lists in and translated at ${formatMs(r.cpu.ready.listedMs)}, RSS then ${mb(r.cpu.ready.listedRssMb)}, peak RSS at the end of the first sync ${mb(r.cpu.ready.maxRssMb)})`,
    `CPU per 1,000 slice changes ${formatMs(r.cpu.cpuMsPer1000)} (goal ≤ 50 ms)`,
    r.cpu.raw ? `replace every endpoint end to end ${r.cpu.raw.ratio.toFixed(2)}× the raw socket (goal ≥ 0.6×)` : "end to end vs raw: not measured (the changes were not one full round)",
  ];
  return figures.join("; ");
}

export const controllerCostScenario: Scenario = {
  name: "controller-cost",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const runs: CostRun[] = [];
    for (const round of costRounds(context.quick)) runs.push(await retryOnBindConflict(() => cost(round, context.log), context.log));
    // The goal figures: the largest round, as the host gives it and under the Pod's limit.
    const largest = Math.max(...runs.map((r) => r.services));
    const goals = runs.filter((r) => r.services === largest);
    const mb = (x: number): string => `${x.toFixed(0)} MB`;
    const n = (x: number): string => x.toLocaleString("en-US");
    return {
      title: "Controller cost, the controller in a process of its own (startup; peak RSS; CPU per 1,000 slice changes)",
      columns: ["Service ports", "endpoints", "memory limit", "startup: lists + translate + render", "startup CPU", "RSS holding the model", "peak RSS (render)", "sidecar start + first sync", "peak RSS (sidecar)", "sidecar after the changes: heap after GC / RSS", "changes", "CPU / 1,000 changes", "changes wall time", "replace every endpoint: end to end vs raw socket"],
      rows: runs.map((r) => [
        n(r.services), n(r.endpoints), r.limit === undefined ? "none" : "mb" in r.limit ? `${r.limit.mb} MiB` : "none (unavailable)",
        `${formatMs(r.startup.totalMs)} (${formatMs(r.startup.listsMs)} + ${formatMs(r.startup.translateMs)} + ${formatMs(r.startup.renderMs)})`,
        formatMs(r.startup.cpuMs), mb(r.startup.rssMb), mb(r.startup.maxRssMb),
        r.cpu ? formatMs(r.cpu.ready.startupMs) : "–", r.cpu ? mb(Math.max(r.cpu.ready.maxRssMb, r.cpu.done.maxRssMb)) : "–", r.cpu ? `${mb(r.cpu.done.retainedHeapMb)} / ${mb(r.cpu.done.rssAfterGcMb)}` : "–",
        r.cpu ? n(r.cpu.changes) : "–", r.cpu ? formatMs(r.cpu.cpuMsPer1000) : "–", r.cpu ? formatMs(r.cpu.wallMs) : "–",
        r.cpu?.raw ? `${r.cpu.raw.ratio.toFixed(2)}× (${formatMs(r.cpu.raw.endToEndMs)} vs ${formatMs(r.cpu.raw.rawMs)})` : "–",
      ]),
      notes: [
        ...goals.map((r) => `Issue 14's goals at ${n(r.services)} Services × ${PER_SERVICE} endpoints (${n(r.endpoints)}), the sidecar in a process of its own, no V8 flag, ${goalFigures(r)}.`),
        `Memory limit: the DaemonSet gives the sidecar and the render init container ${POD_LIMIT_MB} MiB (deploy/base/daemonset.yaml); Node reads a container's limit at start and V8 sizes its heap from it (no flag), so the limited round is what a Pod holds; without a limit V8 sizes its heap, young generation included, from the host's RAM. The limit goes on a memory cgroup made for the round (bench/lib/memory-cgroup.ts; needs root).`,
        `The controller runs in a child process (bench/controller-child.ts); the fake API server with every object stays in the parent, HAProxy (${SLOTS} slots per backend) is its own process. Figures are the child's: process.cpuUsage(), process.memoryUsage().rss, process.resourceUsage().maxRSS. A bare Node process with the controller's modules loaded is ${runs.map((r) => mb(r.startup.idleRssMb)).join(" / ")} before any work.`,
        `Memory of the render child holding the model: JS heap ${runs.map((r) => `${mb(r.startup.heapUsedMb)} (${mb(r.startup.retainedHeapMb)} after a full GC)`).join(" / ")}. The sidecar child's JS heap after the changes: ${runs.map((r) => (r.cpu ? `${mb(r.cpu.done.heapUsedMb)} before GC, ${mb(r.cpu.done.retainedHeapMb)} after` : "–")).join(" / ")}.`,
        "Startup child: both initial lists (HTTPS, paged, each object pruned to what translation reads as it arrives), translation of every Service, bootstrap configuration rendered and written — what `kube-haproxy render` does; 'RSS holding the model' is taken right after, with the watch's objects and the proxier's model still alive.",
        "Sidecar child: the full sidecar against a real HAProxy: start + first sync = both lists, translation, the reloader's startup check and the engine's first full sync (`show servers state` of every slot, then every endpoint written to its slot). Then one change = one EndpointSlice update replacing all 10 endpoints of one Service (10 slots re-addressed), written here to the API server; CPU is the child's from the first write to the last change applied in HAProxy.",
        ...runs.filter((r) => r.cpu && r.cpu.reloads > 0).map((r) => `${n(r.services)} ports: ${r.cpu!.reloads} HAProxy reloads during the sidecar's run.`),
        "End to end vs raw: the changes above are one round, every Service's 10 endpoints replaced by one slice write; then, with the sidecar gone, the raw socket replaces them all once more (20 commands per Service, one pipelined write, checked in `show servers state`). The figure is raw time / end-to-end time (1× = as fast as the socket allows).",
      ],
      json: { perService: PER_SERVICE, slots: SLOTS, runs },
    };
  },
};
