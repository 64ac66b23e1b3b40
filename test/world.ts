// A whole world in one process for the tests: the simulated cluster with one Service "web"
// (three loopback pods), the bootstrap config rendered by the real code, a real HAProxy from it,
// and the sidecar in process.

import { join } from "node:path";
import { renderFromCluster } from "../src/bootstrap.ts";
import { silentLogger } from "../src/log.ts";
import { resolveOptions, type Options } from "../src/options.ts";
import { startSidecar, type Sidecar } from "../src/sidecar.ts";
import { startSimulatedCluster, type SimulatedCluster } from "../src/sim/cluster.ts";
import { startHaproxy, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort, startPods, type Pod } from "../src/sim/pods.ts";
import { tempDir } from "./helpers.ts";

export interface World {
  cluster: SimulatedCluster;
  haproxy: HaproxyProcess;
  sidecar: Sidecar;
  options: Options;
  pods: Pod[];
  url: string;
}

export async function world(t: Parameters<typeof tempDir>[0], mode: "tcp" | "http", extra: Record<string, string> = {}): Promise<World> {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  const pods = await startPods(3, { base: 40 + Math.floor(Math.random() * 100) });
  t.after(async () => void (await Promise.all(pods.map((pod) => pod.stop()))));
  const port = await freePort();
  cluster.api.upsert("services", makeService("default", "web", [{ port }], (s) => (s.metadata!.annotations!["kube-haproxy.io/mode"] = mode)));
  cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", pods.map((p) => ({ ip: p.ip })), [{ port: pods[0]!.port }]));
  const options = resolveOptions({
    kubeconfig: cluster.kubeconfig,
    config: join(dir, "haproxy.cfg"),
    socket: join(dir, "runtime.sock"),
    "master-socket": join(dir, "master.sock"),
    "bind-address": "127.0.0.1",
    "stats-bind-address": "",
    "min-reload-period": "0s",
    slots: "4",
    ...extra,
  });
  await renderFromCluster(options, silentLogger, {});
  const haproxy = await startHaproxy({ dir, configPath: options.config });
  t.after(() => haproxy.stop());
  const sidecar = startSidecar(options, { log: silentLogger, env: {} });
  t.after(() => sidecar.stop());
  await sidecar.started;
  await sidecar.reloader.idle();
  return { cluster, haproxy, sidecar, options, pods, url: `http://127.0.0.1:${port}/` };
}

