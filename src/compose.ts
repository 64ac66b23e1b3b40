// Options → each part's settings, in one place, for the commands that wire the parts (run,
// render): the watch, the translation and the rendered configuration's global settings.

import { availableParallelism } from "node:os";
import { parseSocketAddress } from "./haproxy/address.ts";
import { ALGORITHMS } from "./haproxy/algorithms.ts";
import type { RenderOptions } from "./haproxy/render.ts";
import { loadKubeConfig } from "./kube/kubeconfig.ts";
import type { NodeTopology } from "./kube/topology.ts";
import { serviceLabelSelector, type TranslateOptions } from "./kube/translate.ts";
import { ClusterWatch } from "./kube/watch.ts";
import type { Logger } from "./log.ts";
import type { Options } from "./options.ts";

/** `node`: local mode's node and its zone, when known (the sidecar reads the zone; `render` does without). */
export function translateOptions(options: Options, node: NodeTopology = { nodeName: options.nodeName }): TranslateOptions {
  return {
    bindAddress: options.bindAddress,
    algorithm: options.algorithm,
    algorithms: ALGORITHMS,
    minSlots: options.slots,
    serviceProxyName: options.serviceProxyName,
    reservedPorts: options.reservedPorts,
    onlyLabelled: options.expose === "labelled",
    healthCheck: options.healthCheck,
    // The same object the sidecar fills the zone into (not a copy). mesh is local plus the
    // Services' external addresses and NodePorts.
    ...(options.proxyMode !== "onlyfetch" ? { local: node } : {}),
    ...(options.proxyMode === "mesh" ? { mesh: true } : {}),
  };
}

export function renderOptions(options: Options, cpus: number = availableParallelism()): RenderOptions {
  // Validated as host:port by options.ts; empty means no stats frontend.
  const stats = options.statsBindAddress === "" ? undefined : parseSocketAddress(options.statsBindAddress);
  return {
    runtimeSocket: options.socket,
    connectRetries: options.connectRetries,
    // More threads than CPUs only compete for them (HAProxy 3.x warns at every start).
    nbthread: options.nbthread === undefined ? undefined : Math.min(options.nbthread, cpus),
    stats: stats && "host" in stats ? { bind: { address: stats.host, port: stats.port }, user: options.user, passwd: options.passwd } : undefined,
  };
}

export function clusterWatch(options: Options, log: Logger, env: NodeJS.ProcessEnv): ClusterWatch {
  return new ClusterWatch({
    kubeConfig: loadKubeConfig(options.kubeconfig, env),
    log,
    namespace: options.namespace,
    // Exposure is onlyfetch's: local mode serves every Service.
    serviceSelector: serviceLabelSelector(options.serviceProxyName, options.proxyMode === "onlyfetch" && options.expose === "labelled"),
    qps: options.kubeApiQps,
    burst: options.kubeApiBurst,
    stallTimeoutMs: options.watchStallTimeoutMs,
  });
}
