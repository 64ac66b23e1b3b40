// The desired model: what HAProxy should look like, independent of Kubernetes objects.
// kube/ produces it, sync/ and haproxy/ consume it. Plain readonly data, nothing else.

/** HAProxy `mode` of a frontend/backend pair. */
export type ProxyMode = "tcp" | "http";

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

/** A frontend bind address. */
export interface Bind {
  readonly address: string;
  readonly port: number;
}

/**
 * One Service port: a frontend and a backend in HAProxy. Every field except `endpoints`
 * and `triggerTime` is structural: changing it means a new configuration.
 */
export interface Backend {
  /** HAProxy backend name, already validated (see haproxy/names.ts). */
  readonly name: string;
  /** `namespace/name:port`, for logs and metrics. */
  readonly servicePort: string;
  readonly mode: ProxyMode;
  readonly algorithm: string;
  readonly binds: readonly Bind[];
  /** ClientIP session affinity: stick on the source address for this many seconds. */
  readonly affinityTimeoutSeconds?: number;
  /** Absent: no health checks (HAProxy trusts Kubernetes' readiness alone). */
  readonly healthCheck?: HealthCheck;
  /** The least number of template slots to allocate. */
  readonly minSlots: number;
  /** Sorted by ip, then port; unique on ip:port. */
  readonly endpoints: readonly Endpoint[];
  /** The newest `endpoints.kubernetes.io/last-change-trigger-time`, in ms since the epoch. */
  readonly triggerTime?: number;
}

export function endpointKey(endpoint: { readonly ip: string; readonly port: number }): string {
  return endpoint.ip.includes(":") ? `[${endpoint.ip}]:${endpoint.port}` : `${endpoint.ip}:${endpoint.port}`;
}
