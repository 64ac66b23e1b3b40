// `kube-haproxy render`: the cluster's current state as a bootstrap haproxy.cfg, the init step
// before HAProxy starts. The same translation, layout and renderer as the sidecar's reloads.

import { clusterWatch, renderOptions, translateOptions } from "./compose.ts";
import { layoutBackend } from "./dataplane/planner.ts";
import { writeConfigAtomically } from "./haproxy/config-file.ts";
import { renderConfig } from "./haproxy/render.ts";
import { renderPoolConfig } from "./haproxy/render-pool.ts";
import { initialPool } from "./local-mode.ts";
import type { Logger } from "./log.ts";
import type { Options } from "./options.ts";
import { Proxier } from "./proxier.ts";

/** Lists the cluster once and writes the bootstrap configuration to --config. */
export async function renderFromCluster(options: Options, log: Logger, env: NodeJS.ProcessEnv): Promise<{ backends: number }> {
  const watch = clusterWatch(options, log, env);
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
  const text = options.proxyMode !== "onlyfetch"
    ? renderPoolConfig(initialPool(options, backends), renderOptions(options))
    : renderConfig(backends.map((backend) => layoutBackend(backend)), renderOptions(options));
  await writeConfigAtomically(options.config, text);
  log.info(`wrote ${options.config}: ${backends.length} Service ports`);
  return { backends: backends.length };
}
