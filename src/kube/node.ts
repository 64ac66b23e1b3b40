// This node's zone, for topology hints (topology.ts): its Node's `topology.kubernetes.io/zone`
// label, read once with a plain `get` (RBAC: get on nodes, nothing more; deploy/rbac.yaml).
//
// Read once when the sidecar starts, after the initial lists (the API server answers by then),
// not watched: the zone label is written when a node registers and does not change while the
// node runs, and a watch of every Node in the cluster for one label would cost more RBAC (list,
// watch on all nodes) and memory than it is worth. A relabelled node takes a sidecar restart.

import { ApiException, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { KubeHaproxyError } from "../errors.ts";

export const LABEL_ZONE = "topology.kubernetes.io/zone";

/** The zone label of Node `nodeName`; undefined when it has none. E_API_REQUEST when it cannot be read (with why, in one sentence). */
export async function readNodeZone(kubeConfig: KubeConfig, nodeName: string): Promise<string | undefined> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  try {
    const node = await core.readNode({ name: nodeName });
    const zone = node.metadata?.labels?.[LABEL_ZONE];
    return typeof zone === "string" && zone !== "" ? zone : undefined;
  } catch (error) {
    const status = error instanceof ApiException ? error.code : undefined;
    const why =
      status === 404 ? `no Node ${JSON.stringify(nodeName)} (is --hostname-override the node's name?)`
      : status === 403 ? `not allowed to get Node ${JSON.stringify(nodeName)} (the ClusterRole needs get on nodes)`
      : `cannot read Node ${JSON.stringify(nodeName)}: ${(error as Error).message.split("\n")[0]}`;
    throw new KubeHaproxyError("E_API_REQUEST", why, { ...(status === undefined ? {} : { status }), cause: error });
  }
}
