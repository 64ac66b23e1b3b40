// `kube-haproxy render`: the cluster's current state as a bootstrap haproxy.cfg, the init
// step before HAProxy starts. Also the place where options become renderer/translator inputs.

import type { Logger } from "./log.ts";
import type { Options } from "./options.ts";
import { Proxier } from "./proxier.ts";
import { parseSocketAddress } from "./haproxy/address.ts";
import { writeConfigAtomically } from "./haproxy/config-file.ts";
import { renderConfig, type RenderOptions } from "./haproxy/render.ts";
import { loadKubeConfig } from "./kube/kubeconfig.ts";
import { serviceLabelSelector, type TranslateOptions } from "./kube/translate.ts";
import { ClusterWatch } from "./kube/watch.ts";
import type { Backend } from "./model.ts";
import { layoutBackend } from "./sync/layout.ts";

export function translateOptions(options: Options): TranslateOptions {
  return {
    proxyMode: options.proxyMode,
    bindAddress: options.bindAddress,
    algorithm: options.algorithm,
    minSlots: options.slots,
    serviceProxyName: options.serviceProxyName,
    reservedPorts: options.reservedPorts,
    onlyLabelled: options.expose === "labelled",
    healthCheck: options.healthCheck,
  };
}

export function renderOptions(options: Options): RenderOptions {
  // Validated as host:port by options.ts; empty means no stats frontend.
  const stats = options.statsBindAddress === "" ? undefined : parseSocketAddress(options.statsBindAddress);
  return {
    runtimeSocket: options.socket,
    connectRetries: options.connectRetries,
    stats: stats && "host" in stats ? { bind: { address: stats.host, port: stats.port }, user: options.user, passwd: options.passwd } : undefined,
  };
}

export function makeClusterWatch(options: Options, log: Logger, env: NodeJS.ProcessEnv): ClusterWatch {
  return new ClusterWatch({
    kubeConfig: loadKubeConfig(options.kubeconfig, env),
    log,
    namespace: options.namespace,
    serviceSelector: serviceLabelSelector(options.serviceProxyName, options.expose === "labelled"),
    qps: options.kubeApiQps,
    burst: options.kubeApiBurst,
    stallTimeoutMs: options.watchStallTimeoutMs,
  });
}

/** The bootstrap configuration text for these backends. */
export function bootstrapConfig(backends: readonly Backend[], options: Options): string {
  return renderConfig(
    backends.map((backend) => layoutBackend(backend)),
    renderOptions(options),
  );
}

/** Lists the cluster once and writes the bootstrap configuration to --config. */
export async function renderFromCluster(options: Options, log: Logger, env: NodeJS.ProcessEnv): Promise<{ backends: number }> {
  const watch = makeClusterWatch(options, log, env);
  const proxier = new Proxier({ setBackend() {}, deleteBackend() {} }, translateOptions(options), log);
  watch.on("service", proxier.onService);
  watch.on("endpointslice", proxier.onEndpointSlice);
  try {
    await watch.start();
    proxier.start();
  } finally {
    await watch.stop();
  }
  const backends = proxier.backends();
  await writeConfigAtomically(options.config, bootstrapConfig(backends, options));
  log.info(`wrote ${options.config}: ${backends.length} Service ports`);
  return { backends: backends.length };
}
