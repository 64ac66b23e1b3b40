// The Kubernetes objects as kube-haproxy keeps them: the API's own field names and shapes
// (what translate.ts reads, and what mesh and topology will read), every other field dropped
// at the door. A full EndpointSlice or Service from the API carries managedFields, owner
// references, targetRefs and more, several times the size of what translation needs; at
// 100,000 endpoints the informer caches of whole objects were most of the controller's heap.
//
// The field list is written once, below; the types are derived from it and client-node's
// models, so `V1Service` here is client-node's V1Service with only these fields (a full
// client-node object is assignable to it, which tests and the simulated cluster rely on).
// Timestamps stay what the JSON carries: strings (the client-node type says Date).

import type * as k8s from "@kubernetes/client-node";

/** Which fields of T to keep: `true` keeps the value whole, an object prunes it, `[fields]` prunes each item of an array. */
type FieldsOf<T> = {
  readonly [K in keyof T]?: true | (NonNullable<T[K]> extends readonly (infer I)[] ? readonly [FieldsOf<I>] : FieldsOf<NonNullable<T[K]>>);
};

/** T with only the fields F names, optionality kept. */
type Pruned<T, F> = T extends undefined | null
  ? T
  : F extends true
    ? T
    : T extends readonly (infer I)[]
      ? F extends readonly [infer E]
        ? Pruned<I, E>[]
        : never
      : { [K in keyof T as K extends keyof F ? K : never]: Pruned<T[K], F[K & keyof F]> };

const SERVICE_FIELDS = {
  metadata: { namespace: true, name: true, uid: true, resourceVersion: true, labels: true, annotations: true, creationTimestamp: true },
  spec: {
    type: true, clusterIP: true, clusterIPs: true, ipFamilies: true,
    ports: [{ name: true, protocol: true, port: true, targetPort: true, nodePort: true, appProtocol: true }],
    sessionAffinity: true, sessionAffinityConfig: true, externalIPs: true, externalTrafficPolicy: true,
    internalTrafficPolicy: true, healthCheckNodePort: true, trafficDistribution: true, loadBalancerSourceRanges: true,
    publishNotReadyAddresses: true,
  },
  status: { loadBalancer: { ingress: [{ ip: true, ipMode: true, hostname: true }] } },
} as const satisfies FieldsOf<k8s.V1Service>;

const ENDPOINT_SLICE_FIELDS = {
  metadata: { namespace: true, name: true, resourceVersion: true, labels: true, annotations: true, creationTimestamp: true },
  addressType: true,
  ports: [{ name: true, protocol: true, port: true, appProtocol: true }],
  endpoints: [{
    addresses: true,
    conditions: { ready: true, serving: true, terminating: true },
    nodeName: true,
    zone: true,
    hints: { forZones: true, forNodes: true },
  }],
} as const satisfies FieldsOf<k8s.V1EndpointSlice>;

export type V1Service = Pruned<k8s.V1Service, typeof SERVICE_FIELDS>;
export type V1ServicePort = NonNullable<NonNullable<V1Service["spec"]>["ports"]>[number];
export type V1EndpointSlice = Pruned<k8s.V1EndpointSlice, typeof ENDPOINT_SLICE_FIELDS>;
export type V1Endpoint = NonNullable<V1EndpointSlice["endpoints"]>[number];
export type V1EndpointConditions = NonNullable<V1Endpoint["conditions"]>;

/** The fields kube-haproxy keeps of a Service, from the API's JSON. */
export function pruneService(raw: unknown): V1Service {
  return prune(raw, SERVICE_FIELDS) as V1Service;
}

/** The fields kube-haproxy keeps of an EndpointSlice, from the API's JSON. */
export function pruneEndpointSlice(raw: unknown): V1EndpointSlice {
  return prune(raw, ENDPOINT_SLICE_FIELDS) as V1EndpointSlice;
}

type Fields = true | { readonly [field: string]: Fields } | readonly [Fields];

/**
 * Copies the named fields. A value whose shape differs from the list's (a string where an
 * object belongs) is kept as it came: translation reports bad objects, pruning does not hide them.
 */
function prune(value: unknown, fields: Fields): unknown {
  if (fields === true || typeof value !== "object" || value === null) return value;
  if (Array.isArray(fields)) {
    const item = (fields as readonly [Fields])[0];
    return Array.isArray(value) ? value.map((element: unknown) => prune(element, item)) : value;
  }
  if (Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const field in fields) {
    const kept = (value as Record<string, unknown>)[field];
    if (kept !== undefined) out[field] = prune(kept, (fields as Record<string, Fields>)[field]!);
  }
  return out;
}
