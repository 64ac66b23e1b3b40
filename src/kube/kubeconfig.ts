// Where the cluster is: --kubeconfig, else in-cluster (a Pod's service account), else
// $KUBECONFIG or ~/.kube/config. No cluster at all is a clear error pointing at the demo.

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeHaproxyError } from "../errors.ts";

export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (path) {
    if (!existsSync(path)) throw new KubeHaproxyError("E_BAD_OPTION", `--kubeconfig: no such file: ${path}`);
    kubeConfig.loadFromFile(path);
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token")) {
    kubeConfig.loadFromCluster();
  } else if (env.KUBECONFIG || existsSync(join(homedir(), ".kube", "config"))) {
    kubeConfig.loadFromDefault();
  } else {
    throw new KubeHaproxyError(
      "E_BAD_OPTION",
      "no cluster found: pass --kubeconfig, run in a Pod, or set $KUBECONFIG (or try `npm run demo` for a simulated cluster)",
    );
  }
  return kubeConfig;
}
