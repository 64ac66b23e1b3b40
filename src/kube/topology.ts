// Topology-aware routing for ClusterIP traffic (`trafficDistribution: PreferClose`/`PreferSameZone`/
// `PreferSameNode`, and the older topology-mode annotation): the EndpointSlice controller writes
// hints, the proxy on each node follows them. kube-proxy's rules (pkg/proxy/topology.go), for
// the ready endpoints of one Service port:
//
//   no ready endpoint ─────────────────────────────────────────────► no topology
//   every ready one has node hints, one names this node ───────────► only those hinted for this node
//   else every ready one has zone hints, one names this node's zone ► only those hinted for its zone
//   else (an endpoint without hints, no fit, a node without zone) ─► no topology: every endpoint
//
// kube-proxy decides from the hints alone, not from the Service's field: the controller writes
// hints only for Services that ask for them. Node hints are followed as kube-proxy does with
// its PreferSameTrafficDistribution gate on (beta, on by default since 1.34). Topology applies
// to Cluster traffic policy only: internalTrafficPolicy Local already keeps this node's
// endpoints. Only local/mesh mode use it; onlyfetch serves from outside the cluster, where no
// node of the client is known, and keeps every endpoint. Pure.

/** Where this proxy runs: its Node's name and its `topology.kubernetes.io/zone` label (undefined: none). */
export interface NodeTopology {
  readonly nodeName: string;
  readonly zone?: string;
}

/** What topology needs of an endpoint: whether it is ready, and its hints (empty: none). */
export interface HintedEndpoint {
  readonly ready: boolean;
  readonly forZones: readonly string[];
  readonly forNodes: readonly string[];
}

export type TopologyMode = "" | "PreferSameNode" | "PreferSameZone";

export function topologyMode(endpoints: readonly HintedEndpoint[], node: NodeTopology): TopologyMode {
  const ready = endpoints.filter((endpoint) => endpoint.ready);
  if (ready.length === 0) return "";
  if (ready.every((endpoint) => endpoint.forNodes.length > 0) && ready.some((endpoint) => endpoint.forNodes.includes(node.nodeName))) return "PreferSameNode";
  const zone = node.zone;
  if (zone !== undefined && ready.every((endpoint) => endpoint.forZones.length > 0) && ready.some((endpoint) => endpoint.forZones.includes(zone))) return "PreferSameZone";
  return "";
}

/** Whether an endpoint takes this node's traffic under `mode` (the fallback was decided by topologyMode). */
export function availableForTopology(endpoint: HintedEndpoint, mode: TopologyMode, node: NodeTopology): boolean {
  switch (mode) {
    case "":
      return true;
    case "PreferSameNode":
      return endpoint.forNodes.includes(node.nodeName);
    case "PreferSameZone":
      return node.zone !== undefined && endpoint.forZones.includes(node.zone);
  }
}

/** An EndpointSlice endpoint's hints as names (`hints.forZones[].name`, `hints.forNodes[].name`); anything malformed counts as absent. */
export function hintsOf(hints: { readonly forZones?: readonly { readonly name?: unknown }[]; readonly forNodes?: readonly { readonly name?: unknown }[] } | undefined): Pick<HintedEndpoint, "forZones" | "forNodes"> {
  const names = (list: readonly { readonly name?: unknown }[] | undefined): string[] =>
    Array.isArray(list) ? list.flatMap((hint) => (typeof hint?.name === "string" && hint.name !== "" ? [hint.name] : [])) : [];
  return { forZones: names(hints?.forZones), forNodes: names(hints?.forNodes) };
}
