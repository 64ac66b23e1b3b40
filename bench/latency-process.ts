// The sidecar as its own process (`node src/cli.ts run …`), as in production, for latency.ts's
// (c): this process holds only the fake API server, the idle pods and the observer. The measured
// Service "web" has `perService` endpoints, the first of which alternates between pod A and pod
// B; `services - 1` other Services of `perService` endpoints each make the cluster's size.
//
// When is a change "visible in HAProxy"? Not by polling HAProxy's state back to back, as the
// issue's harness did: the poller and HAProxy answering it keep two processes busy on the two
// cores the sidecar needs, and the answer is late by up to one poll. Not by HAProxy's log
// either: 2.6 logs a slot's state changes but not its new address, and the data plane re-uses
// the freed slot for the new pod (one `set server … addr`, no state change, no log line). The
// sidecar marks when it read HAProxy's last reply (lib/tail-marks.ts, a preload that only
// records timestamps); one `show servers state` after a pause checks that the change is there.

import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { renderFromCluster } from "../src/bootstrap.ts";
import { showServersState } from "../src/haproxy/commands.ts";
import { slotName } from "../src/haproxy/names.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { silentLogger } from "../src/log.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { startGracefulPods, type GracefulPod } from "../src/sim/graceful-pod.ts";
import { startHaproxy } from "../src/sim/haproxy.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort } from "../src/sim/pods.ts";
import { fastOptions } from "../src/sim/world.ts";
import { stagesOf, type Mark } from "./lib/marks.ts";
import { listenablePorts } from "./lib/ports.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "src", "cli.ts");
const MARKS = join(ROOT, "bench", "lib", "tail-marks.ts");
const RELAY = join(ROOT, "bench", "lib", "raw-relay.ts");

export interface SidecarProcessOptions {
  /** Service ports in the cluster, the measured one included. @default 1 */
  readonly services?: number;
  /** Endpoints of every Service, the measured one included. @default 1 */
  readonly perService?: number;
  /** A file for the sidecar's per-event marks (tail-marks.ts), written when it exits. */
  readonly marksFile?: string;
  /** Also start the raw relay (lib/raw-relay.ts), marking into this file. */
  readonly relayFile?: string;
}

export interface SidecarProcess {
  readonly port: number;
  readonly a: GracefulPod;
  readonly b: GracefulPod;
  /** The API write: makes `ip` the measured Service's first endpoint. */
  setEndpoint(ip: string): void;
  /** One `show servers state` poll: `to` ready and `from` not. */
  shows(to: string, from: string): Promise<boolean>;
  /** The raw relay's trigger (relayFile): one line to the bare process, which sends HAProxy one command. */
  relay(): void;
  /** Stops everything; the sidecar's marks file is written by then. */
  stop(): Promise<void>;
}

export async function startSidecarProcess(o: SidecarProcessOptions = {}): Promise<SidecarProcess> {
  const services = o.services ?? 1;
  const perService = o.perService ?? 1;
  if (services > 10_000 || perService > 10) throw new RangeError("startSidecarProcess: at most 10,000 Services of 10 endpoints (the fillers' address plan)");
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-lat-"));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const cluster = await startSimulatedCluster(dir);
    cleanups.push(() => cluster.stop());
    const [a, b] = (await startGracefulPods(2, 66)) as [GracefulPod, GracefulPod];
    cleanups.push(() => Promise.all([a.stop(500), b.stop(500)]));
    const [port, ...others] = services === 1 ? [await freePort()] : await listenablePorts(services);
    const backend = `default:web:${port}`;
    const mode = (svc: { metadata?: { annotations?: Record<string, string> } }): void => void (svc.metadata!.annotations!["kube-haproxy.io/mode"] = "tcp");
    cluster.api.upsert("services", makeService("default", "web", [{ port: port! }], mode));
    // Up to 10,000 Services of up to 10 endpoints: s = a + 250 b + 2,500 c spelled 127.(69 + c).a.(j + 1 + 10 b).
    const fillers = (s: number) => Array.from({ length: perService - 1 }, (_, j) => ({ ip: `127.${69 + Math.floor(s / 2_500)}.${s % 250}.${j + 1 + 10 * (Math.floor(s / 250) % 10)}` }));
    const setEndpoint = (ip: string): void => void cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", [{ ip }, ...fillers(250)], [{ port: a.port }]));
    setEndpoint(a.ip);
    others.forEach((p, s) => {
      cluster.api.upsert("services", makeService("default", `svc${s}`, [{ port: p }], mode));
      cluster.api.upsert("endpointslices", makeSlice("default", `svc${s}`, `svc${s}-1`, [{ ip: `127.68.${s % 250}.${Math.floor(s / 250) + 1}` }, ...fillers(s)], [{ port: 8080 }]));
    });
    const slots = 16;
    const options = fastOptions(dir, cluster.kubeconfig, slots);
    await renderFromCluster(options, silentLogger, {});
    const haproxy = await startHaproxy({ dir, configPath: options.config });
    cleanups.push(() => haproxy.stop());
    const metricsPort = await freePort();
    const child = spawn(process.execPath, [
      ...(o.marksFile ? ["--import", MARKS] : []),
      CLI, "run", "--kubeconfig", cluster.kubeconfig, "--socket", options.socket, "--master-socket", options.masterSocket, "--config", options.config,
      "--metrics-bind-address", `127.0.0.1:${metricsPort}`, "--healthz-bind-address", "", "--bind-address", "127.0.0.1", "--stats-bind-address", "", "--min-reload-period", "0s", "--slots", String(slots), "--haproxy-binary", options.haproxyBinary, "--log-level", "warn",
    ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KUBE_HAPROXY_BENCH_MARKS: o.marksFile ?? "" } });
    let stderr = "";
    child.stdout!.on("data", (chunk) => (stderr += chunk));
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    });
    const poller = await promptConnection(haproxy.runtimeSocket);
    cleanups.push(async () => poller.close());
    const line = showServersState(backend).line;
    const shows = async (to: string, from: string): Promise<boolean> => {
      const records = parseServersState(await poller.ask(line));
      return records.some((r) => r.address === to && stateOf(r) === "ready") && !records.some((r) => r.address === from && stateOf(r) === "ready");
    };
    // Started: healthy, and HAProxy has A alone (the sidecar's first full sync is done).
    const deadline = performance.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`kube-haproxy run exited (${child.exitCode}):\n${stderr}`);
      const healthy = await fetch(`http://127.0.0.1:${metricsPort}/healthz`).then((r) => r.ok, () => false);
      if (healthy && (await shows(a.ip, b.ip))) break;
      if (performance.now() > deadline) throw new Error(`kube-haproxy run did not become ready:\n${stderr}`);
      await sleep(20);
    }
    const relay = o.relayFile ? await startRelay(haproxy.runtimeSocket, `set server ${backend}/${slotName(slots)} state maint`, o.relayFile) : undefined;
    if (relay) cleanups.push(() => relay.stop());
    await sleep(200);
    return { port: port!, a, b, setEndpoint, shows, relay: () => relay?.trigger(), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The raw relay in a process of its own, connected to this one over loopback TCP. */
async function startRelay(runtimeSocket: string, command: string, file: string): Promise<{ trigger(): void; stop(): Promise<void> }> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const child = spawn(process.execPath, [RELAY, String((server.address() as AddressInfo).port), runtimeSocket, command, file], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(child, "exit");
  const [peer] = (await once(server, "connection")) as [Socket];
  peer.setNoDelay(true);
  await once(child.stdout!, "data");
  return {
    trigger: () => void peer.write("x\n"),
    async stop() {
      peer.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      server.close();
    },
  };
}

/** A prompt-mode connection to the runtime socket that sends one command at a time. */
async function promptConnection(path: string): Promise<{ ask(line: string): Promise<string>; close(): void }> {
  const socket = connect({ path });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let buffer = "";
  let waiting: ((text: string) => void) | undefined;
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    const end = buffer.indexOf("\n> ");
    if (end === -1 || !waiting) return;
    const reply = buffer.slice(0, end);
    buffer = buffer.slice(end + 3);
    const wake = waiting;
    waiting = undefined;
    wake(reply);
  });
  const ask = (line: string): Promise<string> =>
    new Promise((resolve, reject) => {
      if (socket.destroyed) return reject(new Error("runtime socket closed"));
      waiting = resolve;
      socket.write(`${line}\n`);
    });
  await ask("prompt");
  return { ask, close: () => socket.destroy() };
}

export interface ProcessAckSamples {
  /** API write → HAProxy's last reply read by the sidecar (its marks). */
  readonly total: number[];
  readonly arrive: number[];
  readonly work: number[];
  readonly haproxy: number[];
  /** The fake API server's own share: the upsert call, up to the watch line handed to TLS. */
  readonly api: number[];
  /** The raw relay, interleaved: a write here → HAProxy's reply read by a bare process. */
  readonly raw: number[];
  /** Of those: the write here → the bare process woken with it. */
  readonly rawWake: number[];
  /** Samples whose marks were incomplete (left out). */
  readonly incomplete: number;
  /** Samples a GC pause of the sidecar overlapped, and the pauses during the samples. */
  readonly gcOverlapped: number;
  /** `total` of the samples no GC pause overlapped: the tail without the sidecar's GC. */
  readonly totalWithoutGc: number[];
  readonly gcPauses: number[];
}

const SETTLE_MS = 15;
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * Per sample: the API write, then nothing runs here for SETTLE_MS (no poll in the sidecar's
 * way), then one `show servers state` must show the change (a check, not the measure); then the
 * raw relay's sample. The measure is read from the sidecar's marks after it exited.
 */
export async function measureProcessAck(o: SidecarProcessOptions & { samples: number; warmup: number; log: (line: string) => void; label: string }): Promise<ProcessAckSamples> {
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-marks-"));
  try {
    const marksFile = join(dir, "sidecar.json");
    const relayFile = join(dir, "relay.json");
    const p = await startSidecarProcess({ ...o, marksFile, relayFile });
    const starts: number[] = [];
    const api: number[] = [];
    const relayAt: number[] = [];
    try {
      for (let i = 0; i < o.warmup + o.samples; i++) {
        const [from, to] = i % 2 === 0 ? [p.a, p.b] : [p.b, p.a];
        const t0 = now();
        p.setEndpoint(to.ip);
        const written = now();
        await sleep(SETTLE_MS);
        const until = performance.now() + 10_000;
        while (!(await p.shows(to.ip, from.ip))) if (performance.now() > until) throw new Error(`latency ${o.label}: ${to.ip} never became ready`);
        const r0 = now();
        p.relay();
        await sleep(SETTLE_MS);
        if (i >= o.warmup) {
          starts.push(t0);
          api.push(written - t0);
          relayAt.push(r0);
        }
        if ((i + 1) % 250 === 0) o.log(`latency ${o.label}: ${i + 1}/${o.warmup + o.samples}`);
      }
    } finally {
      await p.stop();
    }
    const { marks } = JSON.parse(await readFile(marksFile, "utf8")) as { marks: Mark[] };
    const relayed = JSON.parse(await readFile(relayFile, "utf8")) as [number, number][];
    // A change's window runs to the next one's write: HAProxy may show the change before the
    // sidecar has read its reply, and the relay's command leaves no mark in the sidecar.
    const windows = starts.map((t0, i) => ({ t0, until: starts[i + 1] ?? Infinity }));
    const stages = stagesOf(marks, windows);
    const done = stages.filter((s) => s !== undefined);
    const raw: number[] = [];
    const rawWake: number[] = [];
    for (const r0 of relayAt) {
      const pair = relayed.find(([arrived]) => arrived >= r0);
      if (!pair) continue;
      rawWake.push(pair[0] - r0);
      raw.push(pair[1] - r0);
    }
    return {
      total: done.map((s) => s.total),
      arrive: done.map((s) => s.arrive),
      work: done.map((s) => s.work),
      haproxy: done.map((s) => s.haproxy),
      api,
      raw,
      rawWake,
      incomplete: stages.length - done.length,
      gcOverlapped: done.filter((s) => s.gcPauses.length > 0).length,
      totalWithoutGc: done.filter((s) => s.gcPauses.length === 0).map((s) => s.total),
      gcPauses: marks.filter((m) => m[0].startsWith("gc") && m[1] >= starts[0]! && m[1] <= starts.at(-1)! + SETTLE_MS).map((m) => m[2]),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
