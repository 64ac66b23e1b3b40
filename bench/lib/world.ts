// The whole system in one process for the bench (a copy of test/world.ts's wiring, without
// node:test): simulated API server → real informers → sidecar → real HAProxy, loopback pods
// that stop gracefully (lib/pod.ts).

import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderFromCluster } from "../../src/bootstrap.ts";
import { silentLogger } from "../../src/log.ts";
import { resolveOptions, type Options } from "../../src/options.ts";
import { startSidecar, type Sidecar } from "../../src/sidecar.ts";
import { startSimulatedCluster, type SimulatedCluster } from "../../src/sim/cluster.ts";
import { startHaproxy, type HaproxyProcess } from "../../src/sim/haproxy.ts";
import { makeService, makeSlice, type PodEndpoint } from "../../src/sim/objects.ts";
import { freePort } from "../../src/sim/pods.ts";
import { startGracefulPods, type GracefulPod } from "./pod.ts";

export interface BenchWorld {
  readonly dir: string;
  readonly cluster: SimulatedCluster;
  readonly haproxy: HaproxyProcess;
  readonly sidecar: Sidecar;
  readonly options: Options;
  /** The pods the Service starts with. */
  readonly pods: GracefulPod[];
  readonly port: number;
  readonly url: string;
  /** The engine's backend name of the Service port. */
  readonly backend: string;
  /** Replaces the Service's one slice with these endpoints (all on the pods' port). */
  setEndpoints(endpoints: readonly PodEndpoint[]): void;
  /** Stops sidecar, HAProxy, pods, API server; removes the folder. Idempotent. */
  stop(): Promise<void>;
}

export interface WorldOptions {
  readonly mode: "tcp" | "http";
  readonly pods: number;
  /** Second octet of the pods' 127.x.y.z addresses. */
  readonly base: number;
  readonly slots?: number;
}

export function fastOptions(dir: string, kubeconfig: string, slots: number): Options {
  return resolveOptions({
    kubeconfig,
    config: join(dir, "haproxy.cfg"),
    socket: join(dir, "runtime.sock"),
    "master-socket": join(dir, "master.sock"),
    "bind-address": "127.0.0.1",
    "stats-bind-address": "",
    "metrics-bind-address": "",
    "healthz-bind-address": "",
    "min-reload-period": "0s",
    slots: String(slots),
  });
}

export async function startWorld(o: WorldOptions): Promise<BenchWorld> {
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-world-"));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const cluster = await startSimulatedCluster(dir);
    cleanups.push(() => cluster.stop());
    const pods = await startGracefulPods(o.pods, o.base);
    cleanups.push(() => Promise.all(pods.map((pod) => pod.stop(1_000))));
    const port = await freePort();
    cluster.api.upsert("services", makeService("default", "web", [{ port }], (s) => (s.metadata!.annotations!["kube-haproxy.io/mode"] = o.mode)));
    const setEndpoints = (endpoints: readonly PodEndpoint[]): void =>
      void cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", endpoints, [{ port: pods[0]!.port }]));
    setEndpoints(pods.map((p) => ({ ip: p.ip })));
    const options = fastOptions(dir, cluster.kubeconfig, o.slots ?? 16);
    await renderFromCluster(options, silentLogger, {});
    const haproxy = await startHaproxy({ dir, configPath: options.config });
    cleanups.push(() => haproxy.stop());
    const sidecar = startSidecar(options, { log: silentLogger, env: {} });
    cleanups.push(() => sidecar.stop());
    await sidecar.started;
    await sidecar.reloader.idle();
    await sidecar.engine.whenSynced();
    return { dir, cluster, haproxy, sidecar, options, pods, port, url: `http://127.0.0.1:${port}/`, backend: `default:web:${port}`, setEndpoints, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Resolves on the engine's next "applied" for `backend` for which `check()` holds. */
export function nextApplied(sidecar: Sidecar, backend: string, check: () => boolean, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sidecar.engine.off("applied", on);
      reject(new Error(`${backend}: not applied within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (name: string): void => {
      if (name !== backend || !check()) return;
      const at = performance.now();
      clearTimeout(timer);
      sidecar.engine.off("applied", on);
      resolve(at);
    };
    sidecar.engine.on("applied", on);
  });
}

/** The IPs of `backend`'s slots the engine has applied in this state. */
export function appliedIps(sidecar: Sidecar, backend: string, state: string): string[] {
  const applied = sidecar.engine.applied(backend);
  return applied ? [...applied.values()].filter((slot) => slot.state === state).map((slot) => slot.ip) : [];
}

export interface ClientCounts {
  readonly sent: number;
  readonly failed: number;
  readonly errors: readonly string[];
}

export interface LoadResult extends ClientCounts {
  /** The same, per kind of client: a new connection per request, or one keep-alive connection. */
  readonly newConnection: ClientCounts;
  readonly keepAlive: ClientCounts;
}

/** HTTP clients hammering `url` until stopped: `clients` on new connections and `clients` keep-alive. */
export function startLoad(url: string, clients = 3): { stop(): Promise<LoadResult> } {
  let running = true;
  const counts = { newConnection: { sent: 0, failed: 0, errors: [] as string[] }, keepAlive: { sent: 0, failed: 0, errors: [] as string[] } };
  const one = (agent: Agent | false): Promise<void> =>
    new Promise((resolve) => {
      const c = agent ? counts.keepAlive : counts.newConnection;
      c.sent++;
      const req = request(url, { agent, timeout: 5_000 }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) {
            c.failed++;
            c.errors.push(`HTTP ${res.statusCode}`);
          }
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => {
        c.failed++;
        c.errors.push(error.message);
        resolve();
      });
      req.end();
    });
  const loops: Promise<void>[] = [];
  const agents: Agent[] = [];
  for (let i = 0; i < clients; i++) {
    loops.push((async () => {
      while (running) await one(false);
    })());
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    loops.push((async () => {
      while (running) await one(agent);
    })());
  }
  const summary = (c: { sent: number; failed: number; errors: string[] }): ClientCounts => ({ sent: c.sent, failed: c.failed, errors: [...new Set(c.errors)].slice(0, 5) });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
      const [n, k] = [summary(counts.newConnection), summary(counts.keepAlive)];
      return { sent: n.sent + k.sent, failed: n.failed + k.failed, errors: [...new Set([...n.errors, ...k.errors])].slice(0, 5), newConnection: n, keepAlive: k };
    },
  };
}
