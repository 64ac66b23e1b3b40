// This node's zone, for topology hints (topology.ts): its Node's `topology.kubernetes.io/zone`
// label, read once with a plain `get` (RBAC: get on nodes, nothing more; deploy/rbac.yaml).
//
// Read once when the sidecar starts, after the initial lists (the API server answers by then),
// not watched: the zone label is written when a node registers and does not change while the
// node runs, and a watch of every Node in the cluster for one label would cost more RBAC (list,
// watch on all nodes) and memory than it is worth. A relabelled node takes a sidecar restart.

import { KubeHaproxyError } from "../errors.ts";
import type { ApiAccess } from "./api-access.ts";
import { apiGet, apiUrl, readBody } from "./list.ts";

export const LABEL_ZONE = "topology.kubernetes.io/zone";
const READ_TIMEOUT_MS = 10_000;

/** The zone label of Node `nodeName`; undefined when it has none. E_API_REQUEST when it cannot be read (with why, in one sentence). */
export async function readNodeZone(access: ApiAccess, nodeName: string): Promise<string | undefined> {
  const name = JSON.stringify(nodeName);
  let status: number | undefined;
  let body: string;
  try {
    const { res } = await apiGet(access, apiUrl(access, `/api/v1/nodes/${encodeURIComponent(nodeName)}`, {}), READ_TIMEOUT_MS);
    status = res.statusCode;
    body = await readBody(res);
  } catch (error) {
    throw new KubeHaproxyError("E_API_REQUEST", `cannot read Node ${name}: ${(error as Error).message.split("\n")[0]}`, { cause: error });
  }
  if (status !== 200) {
    const why =
      status === 404 ? `no Node ${name} (is --hostname-override the node's name?)`
      : status === 403 ? `not allowed to get Node ${name} (the ClusterRole needs get on nodes)`
      : `cannot read Node ${name}: HTTP ${status} ${body.slice(0, 200)}`;
    throw new KubeHaproxyError("E_API_REQUEST", why, status === undefined ? {} : { status });
  }
  const zone = (JSON.parse(body) as { metadata?: { labels?: Record<string, unknown> } }).metadata?.labels?.[LABEL_ZONE];
  return typeof zone === "string" && zone !== "" ? zone : undefined;
}
