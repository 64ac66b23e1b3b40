// The desired model: what the data plane should serve, independent of Kubernetes objects.
// kube/ produces it, dataplane/ and haproxy/ consume it. Plain readonly data, and the few pure
// rules every stage must agree on: names, endpoint validity, what "structure" is.

import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { formatHostPort } from "./address.ts";

/** How the proxy serves Services (--proxy-mode); only onlyfetch is built. */
export type ProxyMode = "onlyfetch" | "local" | "mesh";

/** How one Service port's traffic is proxied: HAProxy's `mode`. */
export type BackendMode = "tcp" | "http";

/** How an endpoint should be served: `ready` takes new connections, `drain` keeps only existing ones. */
export type EndpointState = "ready" | "drain";

/** One endpoint of a Service port, as HAProxy should serve it. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  readonly state: EndpointState;
}

/**
 * Active health checks of a backend's endpoints: a TCP connect every `intervalMs`, so that an
 * endpoint whose host vanished stops getting connections before Kubernetes notices.
 */
export interface HealthCheck {
  readonly intervalMs: number;
}

/** `true` checks at this interval: a vanished host is DOWN within ~1.6 s (haproxy/commands.ts). */
export const DEFAULT_HEALTH_CHECK: HealthCheck = { intervalMs: 500 };
/** Health check intervals accepted, in ms: from a flood of checks to checks that are no help. */
const HEALTH_CHECK_INTERVAL_MS = { min: 100, max: 60_000 } as const;

/**
 * A health check setting, as the annotation and --health-check take it: `false`, `true`
 * (DEFAULT_HEALTH_CHECK) or an interval in whole ms or s (`250ms`, `2s`) within
 * HEALTH_CHECK_INTERVAL_MS. Undefined when the text is none of these.
 */
export function parseHealthCheck(text: string): HealthCheck | false | undefined {
  if (text === "false") return false;
  if (text === "true") return DEFAULT_HEALTH_CHECK;
  const match = /^([1-9]\d{0,5})(ms|s)$/.exec(text);
  const intervalMs = match ? Number(match[1]) * (match[2] === "s" ? 1000 : 1) : NaN;
  return intervalMs >= HEALTH_CHECK_INTERVAL_MS.min && intervalMs <= HEALTH_CHECK_INTERVAL_MS.max ? { intervalMs } : undefined;
}

/** A frontend bind address. */
export interface Bind {
  readonly address: string;
  readonly port: number;
  /**
   * Mesh mode, a load balancer IP's `loadBalancerSourceRanges` of its family: only sources in
   * these CIDRs (canonical, sorted, none inside another) may reach it; empty: none may.
   * Absent: any source. The kernel filters, HAProxy never sees it (not structure).
   */
  readonly sourceRanges?: readonly string[];
}

/**
 * One Service port: a frontend and a backend in HAProxy. Every field except `endpoints`
 * and `triggerTime` is structural (see structureOf): changing it means a new configuration.
 */
export interface Backend {
  /** backendName(): unique per Service port, a valid identifier. */
  readonly name: string;
  /** `namespace/name:port`, for logs and metrics. */
  readonly servicePort: string;
  readonly mode: BackendMode;
  readonly algorithm: string;
  readonly binds: readonly Bind[];
  /** Mesh mode: the Service port's NodePort, captured on the node's own addresses (not a bind of its own). */
  readonly nodePort?: number;
  /**
   * Mesh mode, externalTrafficPolicy Local's external backend: connections the node itself (and
   * pods within --cluster-cidr) opens to its binds and NodePort go to this other backend (the Service port's cluster-wide one)
   * instead, so they work with no local endpoint (kube-proxy's short circuit). Not structure.
   */
  readonly nodeShortcut?: string;
  /** ClientIP session affinity: stick on the source address for this many seconds. */
  readonly affinityTimeoutSeconds?: number;
  /** Absent: no health checks (HAProxy trusts Kubernetes' readiness alone). */
  readonly healthCheck?: HealthCheck;
  /** The least number of template slots to allocate. */
  readonly minSlots: number;
  /** Sorted by ip, then port; unique on ip:port; every one passes endpointProblem(). */
  readonly endpoints: readonly Endpoint[];
  /** The newest `endpoints.kubernetes.io/last-change-trigger-time`, in ms since the epoch. */
  readonly triggerTime?: number;
  /**
   * Local/mesh: what the kernel does with a new connection while `endpoints` is empty (kube-proxy's
   * verdicts): `drop` when other nodes have endpoints this node may not use (a Local traffic
   * policy), else (absent) `reject`.
   */
  readonly noEndpointVerdict?: NoEndpointVerdict;
}

/** kube-proxy's answer to a new connection to a Service port without endpoints: refused at once, or dropped. */
export type NoEndpointVerdict = "reject" | "drop";

export function endpointKey(endpoint: { readonly ip: string; readonly port: number }): string {
  return formatHostPort(endpoint.ip, endpoint.port);
}

/**
 * The part of a backend that only a new configuration can change (its name included). The
 * one definition of "structure": the proxier, the data plane and the renderer's hash use it.
 */
export function structureOf(backend: Backend): string {
  const binds = backend.binds.map((bind) => formatHostPort(bind.address, bind.port));
  return JSON.stringify([backend.name, backend.mode, backend.algorithm, binds, backend.affinityTimeoutSeconds ?? null, backend.healthCheck?.intervalMs ?? null]);
}

/**
 * True when every field structureOf reads is the same in both (binds as the same array, as the
 * proxier hands them on for an endpoint change): their structures are equal without building
 * either. False says nothing: compare structureOf then. Keep the two reading the same fields.
 */
export function sameStructureFields(a: Backend, b: Backend): boolean {
  return a.name === b.name && a.mode === b.mode && a.algorithm === b.algorithm && a.binds === b.binds && a.affinityTimeoutSeconds === b.affinityTimeoutSeconds && a.healthCheck?.intervalMs === b.healthCheck?.intervalMs;
}

/** Identifiers are at most this long; backendName() shortens longer ones with a hash. */
export const MAX_NAME_LENGTH = 100;

/**
 * The name of a Service port's frontend and backend. Kubernetes namespaces and Service names are
 * DNS labels and port names IANA service names ([a-z0-9-]), and none may contain ':', so
 * `namespace:name:port` is a valid identifier and distinct Service ports never collide. Longer
 * names are cut and suffixed with a hash of the whole name, which keeps them unique.
 */
export function backendName(namespace: string, service: string, port: string | number): string {
  return shortenName(`${namespace}:${service}:${port}`);
}

/** A name of at most MAX_NAME_LENGTH: longer ones cut and suffixed with a hash of the whole, which keeps them unique. */
export function shortenName(full: string): string {
  if (full.length <= MAX_NAME_LENGTH) return full;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 10);
  return `${full.slice(0, MAX_NAME_LENGTH - hash.length - 1)}-${hash}`;
}

/** An IPv4 or IPv6 address without a zone (`fe80::1%eth0` is never a pod address). */
export function isEndpointAddress(value: unknown): value is string {
  return typeof value === "string" && isIP(value) !== 0 && !value.includes("%");
}

export function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/** The one endpoint validation: translate skips, and the data plane refuses, what fails it. */
export function endpointProblem(endpoint: { readonly ip: unknown; readonly port: unknown }): string | undefined {
  if (!isEndpointAddress(endpoint.ip)) return `invalid IP address ${JSON.stringify(endpoint.ip)}`;
  if (!isPort(endpoint.port)) return `invalid port ${JSON.stringify(endpoint.port)}`;
  return undefined;
}
