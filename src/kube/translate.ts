// A Service and its EndpointSlices → the backends HAProxy should have, with kube-proxy's
// semantics (pkg/proxy: service.go, endpointslicecache.go, topology.go). Pure: the caller owns
// the watches, the log and the clock; this file reads snapshots and returns sorted data. Bad
// objects become Skip records, never exceptions (kube-proxy logs and skips them too).

import type { V1Endpoint, V1EndpointConditions, V1EndpointSlice, V1Service, V1ServicePort } from "./objects.ts";
import { backendName, endpointKey, isEndpointAddress, isPort, parseHealthCheck } from "../model.ts";
import type { Backend, BackendMode, Bind, Endpoint, HealthCheck } from "../model.ts";
import { familyOf, perFamily } from "./families.ts";
import { compareText, healthCheckNodePort, oldestFirst, withExternal, type HealthCheckNodePort } from "./translate-external.ts";
import { availableForTopology, hintsOf, topologyMode, type NodeTopology } from "./topology.ts";

/**
 * onlyfetch (the default): every Service port gets a frontend at bindAddress:<service port>.
 * local (`local` set): every TCP Service port with a ClusterIP is served at each of its
 * ClusterIPs (the binds are what the kernel captures); exposure and reserved ports do not apply.
 */
export interface TranslateOptions {
  readonly bindAddress: string;
  /**
   * Local mode, on this node (`--hostname-override`) in its zone (its Node's label): internalTrafficPolicy
   * Local keeps its endpoints only, topology hints are followed (topology.ts).
   */
  readonly local?: NodeTopology;
  /** mesh (with `local`): the Services' external addresses and NodePorts too (translate-external.ts). */
  readonly mesh?: boolean;
  /** Default balance algorithm (--algorithm), one of `algorithms`. */
  readonly algorithm: string;
  /** The balance algorithms the kube-haproxy.io/algorithm annotation may name (the data plane's). */
  readonly algorithms: ReadonlySet<string>;
  /** Default template slots (--slots). */
  readonly minSlots: number;
  /** --service-proxy-name: Services labelled with exactly this name are ours. */
  readonly serviceProxyName?: string;
  /**
   * Ports a frontend may not bind: the node's own services (sshd, kubelet, etcd…) and ours.
   * In onlyfetch one Service on such a port would keep HAProxy from starting on every node.
   */
  readonly reservedPorts?: ReadonlySet<number>;
  /** Serve only Services labelled kube-haproxy.io/expose=true (--expose labelled). @default false */
  readonly onlyLabelled?: boolean;
  /** Health checks for Services without the annotation (--health-check); undefined: none. */
  readonly healthCheck?: HealthCheck;
}

export type SkipReason =
  | "headless" | "external-name" | "no-ports" | "udp" | "sctp" | "invalid-object" | "proxy-name"
  | "cluster-service" | "port-conflict" | "invalid-endpoint" | "bad-annotation" | "reserved-port" | "not-exposed"
  | "ipv4-mapped-ipv6" | "invalid-affinity-timeout" | "no-cluster-ip";

export interface Skip {
  /** namespace/name */
  readonly service: string;
  /** The Service port (name, or number when unnamed) when only that port is concerned. */
  readonly port?: string;
  readonly reason: SkipReason;
  /** One sentence for the log. */
  readonly message: string;
}

export interface ServiceTranslation {
  /** namespace/name */
  readonly key: string;
  /** Sorted by name. */
  readonly backends: readonly Backend[];
  readonly skipped: readonly Skip[];
  /** metadata.creationTimestamp in ms; the older Service wins a port conflict. */
  readonly createdAt: number;
  /** Mesh mode: what the Service's healthCheckNodePort answers on this node, when it has one. */
  readonly healthCheckNodePort?: HealthCheckNodePort;
}

const LABEL_SERVICE_NAME = "kubernetes.io/service-name";
const LABEL_PROXY_NAME = "service.kubernetes.io/service-proxy-name";
const LABEL_HEADLESS = "service.kubernetes.io/headless";
/** A Service opts in to a frontend on every node with this label set to "true". */
export const LABEL_EXPOSE = "kube-haproxy.io/expose";
const ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time";
const ANNOTATION_MODE = "kube-haproxy.io/mode";
const ANNOTATION_ALGORITHM = "kube-haproxy.io/algorithm";
const ANNOTATION_SLOTS = "kube-haproxy.io/slots";
const ANNOTATION_HEALTH_CHECK = "kube-haproxy.io/health-check";
/** v1.DefaultClientIPServiceAffinitySeconds: three hours. */
const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10_800;
/** v1.MaxClientIPServiceAffinitySeconds: the API server refuses more than a day. */
const MAX_AFFINITY_TIMEOUT_SECONDS = 86_400;
const MAX_SLOTS = 10_000;

/**
 * In onlyfetch mode the cluster's own proxy keeps these: the API server Service must work
 * whether or not kube-haproxy does, and cluster DNS is mostly UDP, which HAProxy cannot carry.
 */
const CLUSTER_SERVICES: ReadonlySet<string> = new Set(["default/kubernetes", "kube-system/kube-dns"]);

// What the API server enforces: namespaces are RFC 1123 labels, Service names RFC 1035 labels,
// Service and EndpointSlice port names RFC 1123 labels (validateServicePort uses
// ValidateDNS1123Label, not IANA_SVC_NAME, so names up to 63 characters are legal).
const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const RFC1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function isLabel(pattern: RegExp, value: unknown): value is string {
  return typeof value === "string" && value.length <= 63 && pattern.test(value);
}

export function serviceKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

/** The Service a slice belongs to, from its kubernetes.io/service-name label; undefined if unlabelled. */
export function sliceServiceKey(slice: V1EndpointSlice): string | undefined {
  const name = slice.metadata?.labels?.[LABEL_SERVICE_NAME];
  const namespace = slice.metadata?.namespace;
  return name && namespace ? `${namespace}/${name}` : undefined;
}

/**
 * The label selector to list and watch Services with. kube-proxy uses
 * `!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`. A selector
 * cannot say "absent OR equal to X", so with --service-proxy-name set we list with only
 * `!service.kubernetes.io/headless` and translateService drops Services labelled for another
 * proxy (reason "proxy-name"). Without it, the server-side selector is kube-proxy's own.
 */
export function serviceLabelSelector(serviceProxyName?: string, onlyLabelled = false): string {
  const selector = serviceProxyName ? `!${LABEL_HEADLESS}` : `!${LABEL_PROXY_NAME},!${LABEL_HEADLESS}`;
  return onlyLabelled ? `${selector},${LABEL_EXPOSE}=true` : selector;
}

export const SERVICE_LABEL_SELECTOR: string = serviceLabelSelector();

/** The selector's rules as a predicate. An empty serviceProxyName counts as unset. */
export function isSelectedService(labels: Readonly<Record<string, string>> | undefined, serviceProxyName?: string): boolean {
  if (labels?.[LABEL_HEADLESS] !== undefined) return false;
  const proxy = labels?.[LABEL_PROXY_NAME];
  return proxy === undefined || (!!serviceProxyName && proxy === serviceProxyName);
}

/**
 * What the Service alone decides, before any slice is read: its skips, settings and the backends
 * of its ports without endpoints. ClusterState keeps it per Service until the Service changes,
 * so that a slice change (the hot path) reads only slices.
 */
export interface PreparedService {
  readonly service: V1Service;
  readonly options: TranslateOptions;
  readonly key: string;
  readonly createdAt: number;
  /** Service-wide skips (the whole Service, or its annotations and affinity), in order. */
  readonly skipped: readonly Skip[];
  /** Undefined: the whole Service is skipped. Per port, in order: a skip, or its backend but for endpoints. */
  readonly ports?: readonly ({ readonly skip: Skip } | { readonly port: V1ServicePort; readonly portId: string; readonly backend: Omit<Backend, "endpoints"> })[];
  readonly nodeLocal: boolean;
  readonly clusterIPs: readonly string[];
}

export function prepareService(service: V1Service, options: TranslateOptions): PreparedService {
  const key = serviceKey(service);
  const createdAt = creationTime(service.metadata?.creationTimestamp);
  const prepared = { service, options, key, createdAt, nodeLocal: false, clusterIPs: [] };
  const whole = wholeServiceSkip(service, key, options);
  if (whole) return { ...prepared, skipped: [{ service: key, ...whole }] };

  const skipped: Skip[] = [];
  const { mode, algorithm, minSlots, healthCheck } = annotationSettings(service, key, options, skipped);
  const affinityTimeoutSeconds = service.spec?.sessionAffinity === "ClientIP" ? affinityTimeout(service, key, skipped) : undefined;
  const clusterIPs = options.local ? serviceClusterIPs(service) : [];
  const [namespace = "", name = ""] = key.split("/");
  const ports: NonNullable<PreparedService["ports"]>[number][] = [];
  const names = new Set<string>();
  for (const port of service.spec?.ports ?? []) {
    const portId = port.name || String(port.port);
    const problem = portProblem(port, key, options.local ? undefined : options.reservedPorts);
    if (problem) {
      ports.push({ skip: { service: key, port: portId, ...problem } });
      continue;
    }
    const backend = backendName(namespace, name, port.name || port.port);
    if (names.has(backend)) {
      ports.push({ skip: { service: key, port: portId, reason: "invalid-object", message: `Service ${key}: port ${portId} is declared twice.` } });
      continue;
    }
    names.add(backend);
    ports.push({
      port,
      portId,
      backend: {
        name: backend,
        servicePort: `${key}:${portId}`,
        mode,
        algorithm,
        binds: options.local ? clusterIPs.map((address) => ({ address, port: port.port })) : [{ address: options.bindAddress, port: port.port }],
        ...(affinityTimeoutSeconds === undefined ? {} : { affinityTimeoutSeconds }),
        ...(healthCheck === undefined ? {} : { healthCheck }),
        minSlots,
      },
    });
  }
  // internalTrafficPolicy Local: this node's endpoints only; none means none (kube-proxy drops).
  const nodeLocal = options.local !== undefined && service.spec?.internalTrafficPolicy === "Local";
  return { ...prepared, skipped, ports, nodeLocal, clusterIPs };
}

export function translateService(
  service: V1Service,
  slices: readonly V1EndpointSlice[],
  options: TranslateOptions,
  prepared: PreparedService = prepareService(service, options),
): ServiceTranslation {
  const { key, createdAt, ports, nodeLocal, clusterIPs } = prepared;
  if (!ports) return { key, backends: [], skipped: [...prepared.skipped], createdAt };
  const skipped = [...prepared.skipped];

  // The caller should pass only this Service's slices; check anyway, since a slice whose label
  // was edited must not leak endpoints into another Service. Sorted by name so that the skip
  // records come out in the same order whatever order the watch delivered the slices in.
  const own = slices.filter((slice) => sliceServiceKey(slice) === key);
  if (own.length > 1) own.sort((a, b) => compareText(a.metadata?.name ?? "", b.metadata?.name ?? ""));
  const triggerTime = newestTriggerTime(own);
  // FQDN slices are deprecated and ignored by kube-proxy. Local/mesh split the families (families.ts).
  const ipSlices = own.filter((slice) => slice.addressType === "IPv4" || slice.addressType === "IPv6");
  const endpointSlices = nodeLocal ? ipSlices.map((slice) => onlyNode(slice, options.local!.nodeName)) : ipSlices;

  const backends: Backend[] = [];
  for (const entry of ports) {
    if ("skip" in entry) {
      skipped.push(entry.skip);
      continue;
    }
    const endpoints = portEndpoints(entry.port, entry.portId, endpointSlices, key, skipped, nodeLocal ? undefined : options.local);
    backends.push(triggerTime === undefined ? { ...entry.backend, endpoints } : { ...entry.backend, endpoints, triggerTime });
  }
  const mesh = options.mesh && options.local ? meshPart(service, key, backends, ipSlices, options.local.nodeName, skipped) : undefined;
  const served = options.local ? perFamily(mesh?.backends ?? backends, familyOf(clusterIPs[0]!), (backend) => clusterEndpoints(service, key, backend, ipSlices)) : backends;
  served.sort((a, b) => compareText(a.name, b.name));
  return { key, backends: served, skipped, createdAt, ...(mesh?.healthCheckNodePort ? { healthCheckNodePort: mesh.healthCheckNodePort } : {}) };
}

/** Every endpoint of a backend's Service port (its ClusterIP or external backend), on any node. */
function clusterEndpoints(service: V1Service, key: string, backend: Backend, slices: readonly V1EndpointSlice[]): Endpoint[] {
  const port = (service.spec?.ports ?? []).find((p) => {
    const id = `${key}:${p.name || p.port}`; // servicePort: this, or this and " (external)"
    return backend.servicePort === id || backend.servicePort.startsWith(`${id} `);
  });
  return port ? portEndpoints(port, port.name || String(port.port), slices, key, []) : [];
}

/** Mesh mode: the external destinations and externalTrafficPolicy (translate-external.ts). */
function meshPart(service: V1Service, key: string, backends: Backend[], slices: readonly V1EndpointSlice[], nodeName: string, skipped: Skip[]) {
  const localSlices = slices.map((slice) => onlyNode(slice, nodeName));
  const invalid = (message: string): void => void skipped.push({ service: key, reason: "invalid-object", message: `Service ${key}: ${message}` });
  return {
    backends: withExternal({
      service,
      key,
      backends,
      localEndpoints: (port) => portEndpoints(port, port.name || String(port.port), localSlices, key, []),
      invalid,
    }),
    healthCheckNodePort: healthCheckNodePort(service, slices, nodeName),
  };
}

/**
 * In onlyfetch every Service port binds bindAddress:<port>, so two Services with the same port
 * number collide. The older Service keeps the port (creationTimestamp, then namespace/name), so
 * creating a Service never takes traffic from one that already works; the younger Service's
 * colliding backends are dropped, its other ports kept.
 * Returns the surviving backends sorted by name and only the port-conflict records, sorted by
 * Service (each translation's own skips are the caller's to report when it changes).
 */
export function resolvePortConflicts(
  translations: readonly ServiceTranslation[],
): { readonly backends: readonly Backend[]; readonly skipped: readonly Skip[] } {
  const ordered = [...translations].sort(oldestFirst);
  const owners = new Map<string, Backend>(); // bind address:port → the backend that holds it
  const backends: Backend[] = [];
  const skipped: Skip[] = [];
  for (const translation of ordered) {
    for (const backend of [...translation.backends].sort((a, b) => compareText(a.name, b.name))) {
      // Binds compare exactly: in onlyfetch every frontend shares one bindAddress.
      const clash = backend.binds.find((bind) => owners.has(bindKey(bind)));
      if (clash) {
        const winner = owners.get(bindKey(clash))!.servicePort;
        const port = backend.servicePort.slice(translation.key.length + 1);
        const message = `Service port ${backend.servicePort} cannot bind ${bindKey(clash)}: the older ${winner} holds it.`;
        skipped.push({ service: translation.key, port, reason: "port-conflict", message });
        continue;
      }
      for (const bind of backend.binds) owners.set(bindKey(bind), backend);
      backends.push(backend);
    }
  }
  backends.sort((a, b) => compareText(a.name, b.name));
  skipped.sort((a, b) => compareText(a.service, b.service) || compareText(a.port ?? "", b.port ?? ""));
  return { backends, skipped };
}

type Problem = Pick<Skip, "reason" | "message">;

/** Service-wide kube-haproxy.io/ annotations: a bad value is reported once and the default kept. */
function annotationSettings(
  service: V1Service,
  key: string,
  options: TranslateOptions,
  skipped: Skip[],
): Pick<Backend, "mode" | "algorithm" | "minSlots" | "healthCheck"> {
  const annotations = service.metadata?.annotations ?? {};
  const read = <T>(name: string, parse: (value: string) => T | undefined, fallback: T, shown: string = String(fallback)): T => {
    const value = annotations[name];
    const parsed = value === undefined ? fallback : parse(value);
    if (parsed !== undefined) return parsed;
    const message = `Service ${key}: annotation ${name}=${JSON.stringify(value)} is invalid; using ${shown}.`;
    skipped.push({ service: key, reason: "bad-annotation", message });
    return fallback;
  };
  const slots = (v: string): number | undefined => (/^[1-9]\d{0,4}$/.test(v) && Number(v) <= MAX_SLOTS ? Number(v) : undefined);
  const healthCheck = read<HealthCheck | false>(ANNOTATION_HEALTH_CHECK, parseHealthCheck, options.healthCheck ?? false, showHealthCheck(options.healthCheck));
  return {
    mode: read<BackendMode>(ANNOTATION_MODE, (v) => (v === "tcp" || v === "http" ? v : undefined), "tcp"),
    algorithm: read(ANNOTATION_ALGORITHM, (v) => (options.algorithms.has(v) ? v : undefined), options.algorithm),
    minSlots: read(ANNOTATION_SLOTS, slots, options.minSlots),
    ...(healthCheck === false ? {} : { healthCheck }),
  };
}

function showHealthCheck(check: HealthCheck | undefined): string {
  return check === undefined ? "no health check" : `a health check every ${check.intervalMs} ms`;
}

/**
 * kube-proxy: ClientIP affinity sticks for timeoutSeconds, which the API server defaults to
 * 10800 and keeps within 1…86400. A value outside (from an API that did not validate) is
 * reported and replaced by the nearest valid one, so the Service is still served.
 */
function affinityTimeout(service: V1Service, key: string, skipped: Skip[]): number {
  const timeout = service.spec?.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (timeout === undefined || timeout === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  if (Number.isInteger(timeout) && timeout > 0 && timeout <= MAX_AFFINITY_TIMEOUT_SECONDS) return timeout;
  const used = typeof timeout === "number" && timeout > MAX_AFFINITY_TIMEOUT_SECONDS ? MAX_AFFINITY_TIMEOUT_SECONDS : DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  const message = `Service ${key}: sessionAffinityConfig.clientIP.timeoutSeconds ${JSON.stringify(timeout)} is not within 1…${MAX_AFFINITY_TIMEOUT_SECONDS}; using ${used}.`;
  skipped.push({ service: key, reason: "invalid-affinity-timeout", message });
  return used;
}

/** kube-proxy's ShouldSkipService, plus the label rules and onlyfetch's cluster Services. */
function wholeServiceSkip(service: V1Service, key: string, options: TranslateOptions): Problem | undefined {
  const metadata = service.metadata;
  if (!isLabel(RFC1123_LABEL, metadata?.namespace) || !isLabel(RFC1035_LABEL, metadata?.name)) {
    return { reason: "invalid-object", message: `Service ${JSON.stringify(key)} has an invalid namespace or name.` };
  }
  const labels = metadata?.labels;
  if (labels?.[LABEL_HEADLESS] !== undefined) {
    return { reason: "headless", message: `Service ${key} is labelled ${LABEL_HEADLESS}.` };
  }
  if (!isSelectedService(labels, options.serviceProxyName)) {
    const proxy = JSON.stringify(labels?.[LABEL_PROXY_NAME]);
    return { reason: "proxy-name", message: `Service ${key} is labelled for the proxy ${proxy}, not this one.` };
  }
  // The watch's selector already leaves them out; this holds the rule for any other caller.
  // Exposure is onlyfetch's question: local mode binds nothing on the node.
  if (!options.local && options.onlyLabelled && labels?.[LABEL_EXPOSE] !== "true") {
    return { reason: "not-exposed", message: `Service ${key} is not labelled ${LABEL_EXPOSE}=true (--expose labelled).` };
  }
  if (service.spec?.type === "ExternalName") {
    return { reason: "external-name", message: `Service ${key} is of type ExternalName: DNS serves it, no proxy.` };
  }
  if (service.spec?.clusterIP === "None") {
    return { reason: "headless", message: `Service ${key} is headless (clusterIP: None): DNS serves it, no proxy.` };
  }
  if (!options.local && CLUSTER_SERVICES.has(key)) {
    const message = `Service ${key} is left to the cluster's own proxy in onlyfetch mode.`;
    return { reason: "cluster-service", message };
  }
  if (!service.spec?.ports?.length) {
    return { reason: "no-ports", message: `Service ${key} has no ports.` };
  }
  if (options.local && serviceClusterIPs(service).length === 0) {
    return { reason: "no-cluster-ip", message: `Service ${key} has no valid ClusterIP to capture.` };
  }
  return undefined;
}

/** Every ClusterIP of a (dual-stack) Service: `clusterIPs`, or `clusterIP` from older API servers; valid ones, once each. */
function serviceClusterIPs(service: V1Service): string[] {
  const listed = service.spec?.clusterIPs?.length ? service.spec.clusterIPs : [service.spec?.clusterIP];
  return [...new Set(listed.filter(isEndpointAddress))];
}

/** A slice with only the endpoints kube-proxy calls local: its `nodeName` is this node. */
function onlyNode(slice: V1EndpointSlice, nodeName: string): V1EndpointSlice {
  return { ...slice, endpoints: (slice.endpoints ?? []).filter((endpoint) => endpoint.nodeName === nodeName) };
}

function portProblem(port: V1ServicePort, key: string, reserved: ReadonlySet<number> = new Set()): Problem | undefined {
  const portId = port.name || String(port.port);
  const invalid = (what: string): Problem => ({ reason: "invalid-object", message: `Service ${key}: port ${what}.` });
  if (port.name && !isLabel(RFC1123_LABEL, port.name)) return invalid(`name ${JSON.stringify(port.name)} is not a DNS label`);
  if (!isPort(port.port)) {
    return invalid(`number ${JSON.stringify(port.port)} is out of range`);
  }
  const protocol = port.protocol ?? "TCP";
  // HAProxy carries no UDP or SCTP: the whole port is skipped, never half configured.
  if (protocol === "UDP" || protocol === "SCTP") {
    const message = `Service ${key}: port ${portId} is ${protocol}, which HAProxy cannot proxy.`;
    return { reason: protocol === "UDP" ? "udp" : "sctp", message };
  }
  if (protocol !== "TCP") return invalid(`${portId} has unknown protocol ${JSON.stringify(protocol)}`);
  if (reserved.has(port.port)) {
    const message = `Service ${key}: port ${portId} (${port.port}) is reserved on the node (--reserved-ports); not bound.`;
    return { reason: "reserved-port", message };
  }
  return undefined;
}

/** How usable an endpoint is; a duplicate ip:port keeps its most usable copy. */
const RANK = { other: 0, servingTerminating: 1, ready: 2 } as const;
type Rank = (typeof RANK)[keyof typeof RANK];

function rank(conditions: V1EndpointConditions | undefined): Rank {
  // kube-proxy: ready and serving are true unless set to false; terminating only if set to true.
  if (conditions?.ready ?? true) return RANK.ready;
  const serving = conditions?.serving ?? true;
  return serving && conditions?.terminating === true ? RANK.servingTerminating : RANK.other;
}

/**
 * The endpoints of one Service port: slice ports match by name and protocol (the slice port
 * carries the target port number). Ready endpoints take traffic and serving-terminating ones
 * drain; with no ready endpoint at all, serving-terminating ones take traffic (kube-proxy's
 * fallback, KEP-1669). Everything else is left out. With `topology` (local mode, Cluster traffic
 * policy), ready endpoints the hints keep away from this node are left out too.
 */
function portEndpoints(
  port: V1ServicePort,
  portId: string,
  slices: readonly V1EndpointSlice[],
  key: string,
  skipped: Skip[],
  topology?: NodeTopology,
): Endpoint[] {
  const found: { readonly ip: string; readonly port: number; readonly rank: Rank; readonly hints: V1Endpoint["hints"] }[] = [];
  const invalid = (message: string): void => {
    skipped.push({ service: key, port: portId, reason: "invalid-endpoint", message: `Service ${key}: ${message}` });
  };
  for (const slice of slices) {
    const sliceName = slice.metadata?.name ?? "";
    for (const slicePort of slice.ports ?? []) {
      if ((slicePort.name ?? "") !== (port.name ?? "")) continue;
      if ((slicePort.protocol ?? "TCP") !== (port.protocol ?? "TCP")) continue;
      const target = slicePort.port;
      if (!isPort(target)) {
        invalid(`EndpointSlice ${sliceName} has invalid port ${JSON.stringify(target ?? null)}; its endpoints are ignored.`);
        continue;
      }
      for (const endpoint of slice.endpoints ?? []) {
        const ip = endpoint.addresses?.[0];
        if (!isEndpointAddress(ip)) {
          invalid(`EndpointSlice ${sliceName} has an invalid endpoint address ${JSON.stringify(ip ?? null)}; it is ignored.`);
          continue;
        }
        if (isIpv4MappedIpv6(ip)) {
          // kube-proxy ignores them too: the API does not allow them as endpoint addresses.
          const message = `Service ${key}: EndpointSlice ${sliceName} has an IPv4-mapped IPv6 address ${JSON.stringify(ip)}; it is ignored.`;
          skipped.push({ service: key, port: portId, reason: "ipv4-mapped-ipv6", message });
          continue;
        }
        found.push({ ip, port: target, rank: rank(endpoint.conditions), hints: endpoint.hints });
      }
    }
  }
  // Sorted by address and port, the most usable copy of a duplicate first (the first seen among
  // equals: the sort is stable); then one per ip:port. No map of keys: this runs on every change.
  found.sort((a, b) => compareText(a.ip, b.ip) || a.port - b.port || b.rank - a.rank);
  let candidates = found.filter((c, i) => i === 0 || c.ip !== found[i - 1]!.ip || c.port !== found[i - 1]!.port);
  if (topology) {
    // Hints matter in local mode only (Cluster traffic policy): read them there.
    const hinted = candidates.map((c) => ({ ...c, ready: c.rank === RANK.ready, ...hintsOf(c.hints) }));
    const mode = topologyMode(hinted, topology);
    candidates = hinted.filter((c) => !c.ready || availableForTopology(c, mode, topology));
  }
  const anyReady = candidates.some((c) => c.rank === RANK.ready);
  const endpoints: Endpoint[] = [];
  for (const c of candidates) {
    if (c.rank !== RANK.other) endpoints.push({ ip: c.ip, port: c.port, state: anyReady && c.rank === RANK.servingTerminating ? "drain" : "ready" });
  }
  return endpoints;
}

/** The newest last-change-trigger-time over the slices (the network-programming latency start). */
function newestTriggerTime(slices: readonly V1EndpointSlice[]): number | undefined {
  let newest: number | undefined;
  for (const slice of slices) {
    const value = slice.metadata?.annotations?.[ANNOTATION_TRIGGER_TIME];
    const ms = value !== undefined && RFC3339.test(value) ? Date.parse(value) : NaN;
    if (Number.isFinite(ms) && (newest === undefined || ms > newest)) newest = ms;
  }
  return newest;
}

/** Typed client objects carry a Date, watch events plain JSON a string. A missing one sorts last. */
function creationTime(value: Date | string | undefined): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === "string" ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

/** `::ffff:a.b.c.d` in any spelling (hex groups, zeros written out): the URL parser normalises it. */
function isIpv4MappedIpv6(ip: string): boolean {
  return ip.includes(":") && /^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${ip}]/`).hostname);
}

function bindKey(bind: Bind): string {
  return endpointKey({ ip: bind.address, port: bind.port });
}
