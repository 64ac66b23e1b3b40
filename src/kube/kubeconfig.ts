// Where the cluster is: --kubeconfig, else in-cluster (a Pod's service account), else
// $KUBECONFIG or ~/.kube/config. No cluster at all is a clear error pointing at the demo; so is
// a kubeconfig that no retry can cure (missing, unreadable, without a current cluster).

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
// The package whole, though only KubeConfig is used: importing just `dist/config.js` measured
// the same RSS (127 MB against 42 MB bare), since it loads the generated models itself
// (README, Dependencies).
import { KubeConfig } from "@kubernetes/client-node";
import { KubeHaproxyError } from "../errors.ts";

export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv): KubeConfig {
  const kubeConfig = new KubeConfig();
  let source: string;
  if (path) {
    source = `--kubeconfig ${path}`;
    if (!existsSync(path)) throw new KubeHaproxyError("E_BAD_OPTION", `--kubeconfig: no such file: ${path}`);
    load(source, () => kubeConfig.loadFromFile(path));
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token")) {
    source = "the in-cluster service account";
    load(source, () => kubeConfig.loadFromCluster());
  } else if (env.KUBECONFIG || existsSync(join(homedir(), ".kube", "config"))) {
    source = env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : "~/.kube/config";
    const missing = (env.KUBECONFIG ?? "").split(delimiter).find((file) => file !== "" && !existsSync(file));
    if (missing !== undefined) throw new KubeHaproxyError("E_BAD_OPTION", `KUBECONFIG: no such file: ${missing}`);
    load(source, () => kubeConfig.loadFromDefault());
  } else {
    throw new KubeHaproxyError(
      "E_BAD_OPTION",
      "no cluster found: pass --kubeconfig, run in a Pod, or set $KUBECONFIG (or try `npm run demo` for a simulated cluster)",
    );
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) {
    const context = kubeConfig.getCurrentContext();
    const why = context ? `its current-context ${JSON.stringify(context)} names no cluster` : "it sets no current-context";
    throw new KubeHaproxyError("E_BAD_OPTION", `${source}: no current cluster (${why})`);
  }
  if (!URL.canParse(cluster.server)) {
    throw new KubeHaproxyError("E_BAD_OPTION", `${source}: cluster ${JSON.stringify(cluster.name)} has no valid server URL (${JSON.stringify(cluster.server ?? "")})`);
  }
  return kubeConfig;
}

function load(source: string, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split("\n")[0];
    throw new KubeHaproxyError("E_BAD_OPTION", `${source}: not a usable kubeconfig (${reason})`, { cause: error });
  }
}
