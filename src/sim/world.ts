// The whole system in one process, for the tests, the bench and the demo's kind of use: the
// simulated API server with one Service "default/web", the bootstrap configuration rendered by
// the real code, a real HAProxy from it, the sidecar in process, and loopback pods that stop
// gracefully (graceful-pod.ts).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderFromCluster } from "../bootstrap.ts";
import { silentLogger } from "../log.ts";
import { resolveOptions, type Options, type RawFlags } from "../options.ts";
import { startSidecar, type Sidecar, type SidecarDeps } from "../sidecar.ts";
import { startSimulatedCluster, type SimulatedCluster } from "./cluster.ts";
import { haproxyBinary, startHaproxy, type HaproxyProcess } from "./haproxy.ts";
import { makeService, makeSlice, type PodEndpoint } from "./objects.ts";
import { freePort } from "./pods.ts";
import { startGracefulPods, type GracefulPod } from "./graceful-pod.ts";

export interface World {
  readonly dir: string;
  readonly cluster: SimulatedCluster;
  readonly haproxy: HaproxyProcess;
  readonly sidecar: Sidecar;
  readonly options: Options;
  /** The pods the Service starts with. */
  readonly pods: GracefulPod[];
  readonly port: number;
  readonly url: string;
  /** The data plane's backend name of the Service port. */
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
  /** Flags over the fast defaults below (metrics address, …). */
  readonly flags?: RawFlags;
  /** Over the sidecar's defaults (silent log, no environment). */
  readonly deps?: Partial<SidecarDeps>;
}

/** Options for a world in `dir`: its own sockets, no extra listeners, reloads at once. */
export function fastOptions(dir: string, kubeconfig: string, slots: number, flags: RawFlags = {}): Options {
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
    "haproxy-binary": haproxyBinary(),
    slots: String(slots),
    ...flags,
  });
}

export async function startWorld(o: WorldOptions): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), "kh-world-"));
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
    const options = fastOptions(dir, cluster.kubeconfig, o.slots ?? 16, o.flags);
    await renderFromCluster(options, silentLogger, {});
    const haproxy = await startHaproxy({ dir, configPath: options.config });
    cleanups.push(() => haproxy.stop());
    const sidecar = startSidecar(options, { log: silentLogger, env: {}, ...o.deps });
    cleanups.push(() => sidecar.stop());
    await sidecar.started;
    await sidecar.dataplane.whenSynced();
    return { dir, cluster, haproxy, sidecar, options, pods, port, url: `http://127.0.0.1:${port}/`, backend: `default:web:${port}`, setEndpoints, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Resolves on the data plane's next "applied" for `backend` for which `check()` holds. */
export function nextApplied(sidecar: Sidecar, backend: string, check: () => boolean, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sidecar.dataplane.off("applied", on);
      reject(new Error(`${backend}: not applied within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (name: string): void => {
      if (name !== backend || !check()) return;
      const at = performance.now();
      clearTimeout(timer);
      sidecar.dataplane.off("applied", on);
      resolve(at);
    };
    sidecar.dataplane.on("applied", on);
  });
}

/** The IPs of `backend`'s slots the data plane has applied in this state. */
export function appliedIps(sidecar: Sidecar, backend: string, state: string): string[] {
  const applied = sidecar.dataplane.applied(backend);
  return applied ? [...applied.values()].filter((slot) => slot.state === state).map((slot) => slot.ip) : [];
}
