// Local and mesh modes: each address family of a Service port on its own, as kube-proxy does (one
// proxier per family: a ClusterIP reaches only endpoints of its own family, from the EndpointSlices
// of that addressType), and what the kernel answers while a backend has no endpoint. Pure; called
// by translate.ts once a Service's backends are built.
//
//   backend (binds of both families) ─► <name> for the primary family (the first ClusterIP's),
//                                        <name>:ipv6 (or :ipv4) for the other one,
//                                        each with the endpoints of its own family
//
// - A NodePort (mesh) stays with the primary family's backend: the capture's NodePort map is one
//   map for both families, so a NodePort reached on an IPv6 node address also goes to the primary
//   family's endpoints (kube-proxy would choose by the node address's family).
// - Without endpoints, `drop` when the Service port has endpoints of this family elsewhere (only
//   node-local ones count here: a Local traffic policy), else `reject`: kube-proxy's verdicts.

import { isIP } from "node:net";
import { shortenName, type Backend, type Endpoint } from "../model.ts";

export type Family = "ipv4" | "ipv6";

export function familyOf(ip: string): Family {
  return isIP(ip) === 6 ? "ipv6" : "ipv4";
}

/**
 * kube-proxy's fallback, per family: when none of a family's endpoints is ready, its serving
 * terminating ones take traffic (translate decided over both families at once).
 */
function ofFamily(endpoints: readonly Endpoint[], family: Family): Endpoint[] {
  const own = endpoints.filter((endpoint) => familyOf(endpoint.ip) === family);
  return own.some((endpoint) => endpoint.state === "ready") ? own : own.map((endpoint) => ({ ...endpoint, state: "ready" }));
}

/**
 * One backend per family of its binds; the primary family (the Service's first ClusterIP's) keeps
 * the name and the NodePort. A family left with nothing to capture (an external backend whose
 * addresses are all of the other family, without a NodePort) gets no backend.
 */
export function splitFamilies(backend: Backend, primary: Family): { readonly family: Family; readonly backend: Backend }[] {
  const other: Family = primary === "ipv4" ? "ipv6" : "ipv4";
  const families = backend.binds.some((bind) => familyOf(bind.address) === other) ? [primary, other] : [primary];
  const { nodePort: _nodePort, ...withoutNodePort } = backend;
  return families.flatMap((family) => {
    const own = family === primary ? backend : {
      ...withoutNodePort,
      name: shortenName(`${backend.name}:${family}`),
      servicePort: `${backend.servicePort} (${family === "ipv6" ? "IPv6" : "IPv4"})`,
      // The node's short circuit (mesh, eTP Local) goes to the cluster-wide backend of the same family.
      ...(backend.nodeShortcut === undefined ? {} : { nodeShortcut: shortenName(`${backend.nodeShortcut}:${family}`) }),
    };
    const binds = backend.binds.filter((bind) => familyOf(bind.address) === family);
    if (binds.length === 0 && own.nodePort === undefined && families.length > 1) return [];
    return [{ family, backend: { ...own, binds, endpoints: ofFamily(backend.endpoints, family) } }];
  });
}

/**
 * A Service's backends in local/mesh mode: split by family, each empty one told whether the kernel
 * drops (`portEndpoints` has endpoints of its family: only other nodes' are left out) or rejects.
 * `primary`: the family of the Service's first ClusterIP; `portEndpoints(backend)`: every endpoint
 * of the backend's Service port, wherever it runs.
 */
export function perFamily(backends: readonly Backend[], primary: Family, portEndpoints: (backend: Backend) => readonly Endpoint[]): Backend[] {
  return backends.flatMap((backend) =>
    splitFamilies(backend, primary).map(({ family, backend: split }) => {
      if (split.endpoints.length > 0 || !portEndpoints(backend).some((endpoint) => familyOf(endpoint.ip) === family)) return split;
      return { ...split, noEndpointVerdict: "drop" as const };
    }),
  );
}
