// `kube-haproxy render`: list the cluster once, write the bootstrap haproxy.cfg, exit. It ends
// either way: a kubeconfig no retry can cure exits 2 at once; an API server that does not give
// its lists within --timeout exits 1 with the last error (the process exit stops the watch).

import { renderFromCluster } from "../bootstrap.ts";
import { KubeHaproxyError } from "../errors.ts";
import { badOption } from "../options.ts";
import { apiServer, apiWait } from "./api-wait.ts";
import type { Setup } from "./setup.ts";

export async function render({ options, log, label }: Setup, env: NodeJS.ProcessEnv): Promise<void> {
  const server = apiServer(options.kubeconfig, env);
  const waiting = apiWait(log, { server });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const last = waiting.lastFailure() ?? "no answer";
      reject(new KubeHaproxyError("E_API_UNAVAILABLE", `no lists from the API server at ${server} within ${label("timeout")} ${options.timeoutMs / 1000}s; last error: ${last}`));
    }, options.timeoutMs);
  });
  const refused = waiting.permanent.then((reason): never => {
    throw badOption(options.kubeconfig ? label("kubeconfig") : "kubeconfig", `the API server at ${server} refuses it: ${reason}`);
  });
  try {
    await Promise.race([renderFromCluster(options, waiting.log, env), timedOut, refused]);
    waiting.done();
  } finally {
    clearTimeout(timer);
  }
}
