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

/**
 * Which fields of T to keep: `true` keeps the value whole, an object prunes it, `[fields]` prunes
 * each item of an array. Two ways to keep a value whole but smaller (issue 14, 100,000 endpoints):
 * `"shared"` keeps one copy of equal strings (node names, zones) for every object that has them,
 * `"conditions"` one copy of each combination of an endpoint's three conditions, and
 * `"annotations"` an annotation map without kubectl's last-applied-configuration (a copy of the
 * whole object, never read).
 */
type FieldsOf<T> = {
  readonly [K in keyof T]?: true | Shared | Conditions | Annotations | (NonNullable<T[K]> extends readonly (infer I)[] ? readonly [FieldsOf<I>] : FieldsOf<NonNullable<T[K]>>);
};
type Shared = "shared";
type Conditions = "conditions";
type Annotations = "annotations";

/** T with only the fields F names, optionality kept. */
type Pruned<T, F> = T extends undefined | null
  ? T
  : F extends true | Shared | Annotations
    ? T
    : F extends Conditions
      ? Pick<T, "ready" & keyof T | "serving" & keyof T | "terminating" & keyof T>
    : T extends readonly (infer I)[]
      ? F extends readonly [infer E]
        ? Pruned<I, E>[]
        : never
      : { [K in keyof T as K extends keyof F ? K : never]: Pruned<T[K], F[K & keyof F]> };

const SERVICE_FIELDS = {
  metadata: { namespace: true, name: true, uid: true, resourceVersion: true, labels: true, annotations: "annotations", creationTimestamp: true },
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
  metadata: { namespace: true, name: true, resourceVersion: true, labels: true, annotations: "annotations", creationTimestamp: true },
  addressType: true,
  ports: [{ name: true, protocol: true, port: true, appProtocol: true }],
  endpoints: [{
    addresses: true,
    conditions: "conditions",
    nodeName: "shared",
    zone: "shared",
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

type Fields = true | Shared | Conditions | Annotations | { readonly [field: string]: Fields } | readonly [Fields];

/**
 * Copies the named fields. A value whose shape differs from the list's (a string where an
 * object belongs) is kept as it came: translation reports bad objects, pruning does not hide them.
 */
function prune(value: unknown, fields: Fields): unknown {
  if (fields === "shared") return sharedText(value);
  if (fields === "conditions") return sharedConditions(value);
  if (fields === "annotations") return withoutLastApplied(value);
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

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

function withoutLastApplied(annotations: unknown): unknown {
  if (typeof annotations !== "object" || annotations === null || !Object.hasOwn(annotations, LAST_APPLIED)) return annotations;
  const { [LAST_APPLIED]: _, ...kept } = annotations as Record<string, unknown>;
  return kept;
}

// One copy of each distinct node name and zone: 100,000 endpoints share a few hundred (V8
// shares strings of up to 10 characters from JSON.parse by itself; real node names are longer).
// Bounded: when a long-lived cluster has shown more distinct values than this, the table starts again.
const SHARED_MAX = 10_000;
const sharedTexts = new Map<string, string>();

function sharedText(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const known = sharedTexts.get(value);
  if (known !== undefined) return known;
  if (sharedTexts.size >= SHARED_MAX) sharedTexts.clear();
  sharedTexts.set(value, value);
  return value;
}

const CONDITION_FIELDS = { ready: true, serving: true, terminating: true } as const;
// Each combination of ready/serving/terminating (true, false or absent: 27), frozen, as it is shared.
const conditionCopies: (object | undefined)[] = [];

/** An endpoint's conditions as the one shared copy of that combination; a non-boolean one pruned as any object, for translation to read as it came. */
function sharedConditions(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const { ready, serving, terminating } = value as Record<string, unknown>;
  const code = conditionCode(ready) * 9 + conditionCode(serving) * 3 + conditionCode(terminating);
  if (Number.isNaN(code)) return prune(value, CONDITION_FIELDS);
  return (conditionCopies[code] ??= Object.freeze(prune(value, CONDITION_FIELDS) as object));
}

function conditionCode(flag: unknown): number {
  return flag === undefined ? 0 : flag === true ? 1 : flag === false ? 2 : NaN;
}
