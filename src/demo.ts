// `kube-haproxy demo`: the whole pipeline on one machine, no cluster needed. A simulated API
// server, loopback pods, a real HAProxy and the sidecar in process; a pod comes or goes every
// second and a live view shows HAProxy following over its runtime API, without a reload.
//
//   churn ──EndpointSlice──► FakeApiServer ──watch──► sidecar ──runtime API──► HAProxy ◄── traffic
//     (trigger-time annotation = the write's time)      engine "applied" ─► latency    └─► pods
//
// renderView() is pure: a DemoView snapshot in, text out. Everything else here is the I/O.

import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { renderFromCluster } from "./bootstrap.ts";
import { KubeHaproxyError } from "./errors.ts";
import { reloadCount } from "./haproxy/master.ts";
import { backendName } from "./model.ts";
import { createLogger } from "./log.ts";
import { resolveOptions } from "./options.ts";
import { startSidecar, type Sidecar } from "./sidecar.ts";
import { startSimulatedCluster } from "./sim/cluster.ts";
import { startHaproxy } from "./sim/haproxy.ts";
import { makeService, makeSlice } from "./sim/objects.ts";
import { freePort, get, startPods, type Pod } from "./sim/pods.ts";

export interface DemoOptions {
  readonly stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Stop after the demo has been live this long (set-up not counted). @default until `signal` */
  readonly durationMs?: number;
  readonly signal?: AbortSignal;
}

export interface DemoSummary {
  /** EndpointSlice writes confirmed applied in HAProxy (writes that meet in one flush count once). */
  readonly changes: number;
  readonly reloads: number;
  /** API write → applied in HAProxy, median and 99th percentile; NaN without any change. */
  readonly p50Ms: number; readonly p99Ms: number;
  readonly requests: number; readonly failedRequests: number;
}

export type PodState = "ready" | "drain" | "gone";
export interface PodView { readonly ip: string; readonly state: PodState; readonly count: number }

/** One Service port: `ready`/`drain` as HAProxy has them (the engine's confirmed slots). */
export interface PortView {
  readonly name: string; readonly mode: string; readonly slots: number; readonly used: number; readonly ready: number; readonly drain: number;
  /** Every pod of the Service plus any that answered within the window, with its answers. */
  readonly answered: readonly PodView[];
}

/** One refresh of the live view: plain data. `latenciesMs` in order of arrival. */
export interface DemoView {
  readonly elapsedMs: number; readonly ports: readonly PortView[]; readonly skipped: readonly string[];
  readonly latenciesMs: readonly number[]; readonly reloads: number;
  readonly requests: number; readonly failed: number; readonly lastError: string | undefined;
  readonly events: readonly string[]; readonly statsUrl: string; readonly dir: string;
}

const NAMESPACE = "demo";
/** Pods run on 127.<base>.0.x; the churn keeps each Service's ready pods within [min, max]. */
const SERVICES = [
  { name: "web", mode: "http", pods: 4, base: 201, min: 3, max: 6 },
  { name: "api", mode: "tcp", pods: 3, base: 202, min: 2, max: 5 },
] as const;
const TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time";
const WINDOW_MS = 3_000; // "answered recently"
const GRACE_MS = 2_000; // terminating (drain) → deleted
const run = promisify(execFile);

function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const ms = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? "–" : `${value.toFixed(0)} ms`);
const pods = (answered: readonly PodView[]): string =>
  answered.map((a) => `${a.ip}${a.state === "ready" ? "" : ` (${a.state})`} ×${a.count}`).join("  ");

/** The last line: what the demo did. Without any change there is no latency to tell. */
export function renderSummary(summary: DemoSummary): string {
  const latency = summary.changes === 0 ? "" : ` (p50 ${ms(summary.p50Ms)}, p99 ${ms(summary.p99Ms)})`;
  return `${summary.changes} changes applied${latency}, ${summary.reloads} reloads, ${summary.requests} requests, ${summary.failedRequests} failed`;
}

/** Printed once before the compact lines (a terminal shows it on every screen instead). */
export function renderHeader(view: Pick<DemoView, "statsUrl" | "dir">): string {
  return `kube-haproxy demo: stats page ${view.statsUrl}, files in ${view.dir}; Ctrl-C to stop\n`;
}

/** The view as text: a full screen for a terminal, else one compact line. */
export function renderView(view: DemoView, tty: boolean): string {
  const { latenciesMs: lat } = view;
  const latency = `last ${ms(lat.at(-1))}, p50 ${ms(percentile(lat, 0.5))}, p99 ${ms(percentile(lat, 0.99))}`;
  const requests = `${view.requests} requests, ${view.failed} failed`;
  const elapsed = `${(view.elapsedMs / 1000).toFixed(1)}s`;
  if (!tty) {
    const ports = view.ports.map((p) => `${p.name} ${p.mode} used ${p.used} free ${p.slots - p.used} ready ${p.ready} drain ${p.drain} [${pods(p.answered)}]`);
    return [`[${elapsed}]`, ...ports, `${lat.length} changes (${latency})`, `${view.reloads} reloads`, requests].join(" | ");
  }
  const lines = [`kube-haproxy demo: simulated cluster, real HAProxy, sidecar in process   ${elapsed}`, ""];
  for (const p of view.ports) {
    lines.push(`${p.name}  (${p.mode})  slots ${p.used} used / ${p.slots - p.used} free  endpoints ${p.ready} ready / ${p.drain} drain`);
    lines.push(`    answered in the last ${WINDOW_MS / 1000} s: ${pods(p.answered) || "–"}`);
  }
  for (const message of view.skipped) lines.push(`skipped: ${message}`);
  lines.push(
    "",
    `changes applied   ${lat.length}   API write → HAProxy: ${latency}`,
    `reloads           ${view.reloads}   (endpoint changes never reload)`,
    `traffic           ${requests}${view.lastError ? `   last error: ${view.lastError}` : ""}`,
    `stats page        ${view.statsUrl}`,
    `files             ${view.dir} (haproxy.cfg, sockets)`,
    "",
    ...view.events.map((event) => `  ${event}`),
    "",
    "Ctrl-C to stop",
  );
  return lines.join("\n") + "\n";
}

interface SimPod { readonly pod: Pod; state: "ready" | "terminating"; since: number }
interface SimService {
  readonly name: string; readonly mode: "http" | "tcp"; readonly backend: string; readonly url: string;
  readonly base: number; readonly podPort: number; readonly min: number; readonly max: number;
  next: number; pods: SimPod[]; answers: { at: number; ip: string }[];
}

/** A Service port as the view shows it: the sidecar's picture of HAProxy, the pods' answers since `since`. */
function portView(svc: SimService, sidecar: Sidecar, since: number): PortView {
  const counts = new Map<string, number>(svc.pods.map((p) => [p.pod.ip, 0]));
  for (const a of svc.answers) if (a.at >= since) counts.set(a.ip, (counts.get(a.ip) ?? 0) + 1);
  const state = (ip: string): PodState => {
    const pod = svc.pods.find((p) => p.pod.ip === ip);
    return pod === undefined ? "gone" : pod.state === "ready" ? "ready" : "drain";
  };
  const applied = [...(sidecar.dataplane.applied(svc.backend)?.values() ?? [])];
  const { slots = 0, used = 0 } = sidecar.dataplane.status().find((s) => s.name === svc.backend) ?? {};
  return {
    name: `${NAMESPACE}/${svc.name}:${svc.mode}`, mode: svc.mode, slots, used,
    ready: applied.filter((s) => s.state === "ready").length, drain: applied.filter((s) => s.state === "drain").length,
    answered: [...counts].sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true })).map(([ip, count]) => ({ ip, count, state: state(ip) })),
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  await requireHaproxy();
  const { stdout } = options;
  const tty = (stdout as NodeJS.WriteStream).isTTY === true;
  const dir = await mkdtemp(join(tmpdir(), "kube-haproxy-demo-"));
  const cleanup: (() => Promise<unknown>)[] = []; // run in reverse order
  const services: SimService[] = [];
  const retiring: Pod[] = []; // deleted from the slice, stopped at the next tick
  const written = new Map<string, number>(); // backend → trigger time of the last write
  const latencies: number[] = [];
  const skipped: string[] = [];
  const events: string[] = [];
  const traffic = { requests: 0, failed: 0, lastError: undefined as string | undefined };
  let reloads = 0;
  let started = performance.now();
  const note = (text: string): void => {
    events.push(`${((performance.now() - started) / 1000).toFixed(1)}s ${text}`);
    events.splice(0, events.length - 5); // the last five
  };
  try {
    // HTTPS like a real cluster when openssl is there to make a CA; plain loopback HTTP if not,
    // so that HAProxy is the demo's only requirement.
    const cluster = await startSimulatedCluster(dir).catch(() => startSimulatedCluster(dir, { tls: false }));
    cleanup.push(() => cluster.stop());
    cleanup.push(() => Promise.all([...services.flatMap((s) => s.pods.map((p) => p.pod)), ...retiring].map((pod) => pod.stop())));
    // One slice per Service, rewritten whole; its trigger time is the write's own time.
    const write = (svc: SimService): void => {
      const now = Date.now();
      const endpoints = svc.pods.map((p) => (p.state === "ready" ? { ip: p.pod.ip } : { ip: p.pod.ip, ready: false, serving: true, terminating: true }));
      const triggered = (slice: V1EndpointSlice): void => void (slice.metadata!.annotations![TRIGGER_TIME] = new Date(now).toISOString());
      cluster.api.upsert("endpointslices", makeSlice(NAMESPACE, svc.name, `${svc.name}-1`, endpoints, [{ name: svc.mode, port: svc.podPort }], triggered));
      written.set(svc.backend, now);
    };
    for (const { name, mode, pods: count, base, min, max } of SERVICES) {
      const initial = await startPods(count, { base });
      const port = await freePort();
      const svc: SimService = {
        name, mode, base, min, max, backend: backendName(NAMESPACE, name, mode), url: `http://127.0.0.1:${port}/`, podPort: initial[0]!.port,
        next: count + 1, pods: initial.map((pod) => ({ pod, state: "ready", since: 0 })), answers: [],
      };
      services.push(svc);
      const annotated = (service: V1Service): void => void (service.metadata!.annotations!["kube-haproxy.io/mode"] = mode);
      cluster.api.upsert("services", makeService(NAMESPACE, name, [{ name: mode, port, targetPort: svc.podPort }], annotated));
      write(svc);
    }
    cluster.api.upsert("services", makeService(NAMESPACE, "dns", [{ name: "dns", port: await freePort(), protocol: "UDP" }]));
    written.clear(); // the initial state is not a change

    const statsPort = await freePort();
    const config = resolveOptions({
      kubeconfig: cluster.kubeconfig, namespace: NAMESPACE, config: join(dir, "haproxy.cfg"), socket: join(dir, "runtime.sock"),
      "master-socket": join(dir, "master.sock"), "bind-address": "127.0.0.1", "stats-bind-address": `127.0.0.1:${statsPort}`,
      "metrics-bind-address": "", "healthz-bind-address": "", slots: "8",
    });
    // Warnings and errors go to the view's event list, not over the screen.
    const log = createLogger({ level: "warn", stream: new Writable({ write: (chunk, _encoding, done) => (note(`! ${String(chunk).trim()}`), done()) }) });
    await renderFromCluster(config, log, {});
    const haproxy = await startHaproxy({ dir, configPath: config.config });
    cleanup.push(() => haproxy.stop());
    const sidecar = startSidecar(config, { log, env: {} });
    cleanup.push(() => sidecar.stop());
    sidecar.proxier.on("skipped", (skip) => skipped.push(skip.message));
    sidecar.dataplane.on("applied", (backend, triggerTime, at) => {
      // Only the demo's own writes, each once (a later flush of the same backend repeats it).
      if (triggerTime === undefined || written.get(backend) !== triggerTime) return;
      written.delete(backend);
      latencies.push(Math.max(0, at - triggerTime));
    });
    await sidecar.started;
    await sidecar.dataplane.whenSynced();

    const statsUrl = `http://127.0.0.1:${statsPort}/`;
    const draw = async (): Promise<void> => {
      reloads = await reloadCount(haproxy.masterSocket).catch(() => reloads);
      const now = performance.now();
      for (const svc of services) svc.answers = svc.answers.filter((a) => now - a.at < WINDOW_MS);
      const ports = services.map((svc) => portView(svc, sidecar, now - WINDOW_MS));
      const text = renderView({ elapsedMs: now - started, ports, skipped, latenciesMs: latencies, reloads, ...traffic, events, statsUrl, dir }, tty);
      // A terminal: home, each line cleared to its end, the rest cleared below (no flicker).
      stdout.write(tty ? `\x1b[H${text.replaceAll("\n", "\x1b[K\n")}\x1b[J` : `${text}\n`);
    };
    let tick = 0;
    const churn = async (): Promise<void> => {
      const now = performance.now();
      await Promise.all(retiring.splice(0).map((pod) => pod.stop()));
      for (const svc of services) {
        const gone = svc.pods.filter((p) => p.state === "terminating" && now - p.since >= GRACE_MS);
        if (gone.length === 0) continue;
        svc.pods = svc.pods.filter((p) => !gone.includes(p));
        retiring.push(...gone.map((p) => p.pod));
        write(svc);
        note(`- ${svc.name} ${gone.map((p) => p.pod.ip).join(", ")} deleted`);
      }
      const svc = services[tick++ % services.length]!;
      const ready = svc.pods.filter((p) => p.state === "ready");
      if (ready.length <= svc.min || (ready.length < svc.max && Math.random() < 0.5)) {
        const [pod] = await startPods(1, { base: svc.base, port: svc.podPort, first: svc.next++ });
        svc.pods.push({ pod: pod!, state: "ready", since: now });
        note(`+ ${svc.name} ${pod!.ip} ready`);
      } else {
        const victim = ready[Math.floor(Math.random() * ready.length)]!;
        victim.state = "terminating";
        victim.since = now;
        note(`~ ${svc.name} ${victim.pod.ip} terminating (drain)`);
      }
      write(svc);
    };
    const request = async (svc: SimService): Promise<void> => {
      traffic.requests++;
      try {
        svc.answers.push({ ip: await get(svc.url, 2_000), at: performance.now() });
      } catch (error) {
        traffic.failed++;
        traffic.lastError = `${svc.name}: ${(error as Error).message}`;
      }
    };

    const done = new AbortController();
    const stop = (): void => done.abort();
    options.signal?.addEventListener("abort", stop, { once: true });
    if (options.signal?.aborted) stop();
    const timer = options.durationMs === undefined ? undefined : setTimeout(stop, options.durationMs);
    started = performance.now();
    stdout.write(tty ? "\x1b[?25l\x1b[2J" : renderHeader({ statsUrl, dir })); // a terminal: cursor hidden, screen cleared
    const loops = [every(500, done.signal, draw, note), every(1_000, done.signal, churn, note)];
    for (const svc of services) loops.push(every(250, done.signal, () => request(svc), note));
    await Promise.all(loops);
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", stop);
    await draw();
    const { requests, failed: failedRequests } = traffic;
    return { changes: latencies.length, reloads, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), requests, failedRequests };
  } finally {
    if (tty) stdout.write("\x1b[?25h");
    for (const step of cleanup.reverse()) await step().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/** Calls `fn` now and then every `periodMs` after it finished, until `signal` aborts. */
async function every(periodMs: number, signal: AbortSignal, fn: () => Promise<void>, onError: (text: string) => void): Promise<void> {
  while (!signal.aborted) {
    await fn().catch((error: unknown) => onError(`! ${(error as Error).message}`));
    await sleep(periodMs, undefined, { signal }).catch(() => {});
  }
}

async function requireHaproxy(): Promise<void> {
  try {
    await run("haproxy", ["-v"]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    throw new KubeHaproxyError("E_BAD_OPTION", "the demo needs HAProxy: apt-get install haproxy", { cause: error });
  }
}
