// kube-haproxy's metrics, in kube-proxy's spirit (`kubeproxy_network_programming_duration_seconds`,
// `kubeproxy_sync_proxy_rules_duration_seconds`, …). One typed object, built once at the edge and
// passed inward; label values are narrowed so a typo does not compile.

import { Registry, type Counter, type Gauge, type Histogram } from "./registry.ts";

/** Runtime API changes land in milliseconds, not kube-proxy's seconds: finer low buckets. */
export const PROGRAMMING_BUCKETS: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const SYNC_BUCKETS: readonly number[] = [0.0001, ...PROGRAMMING_BUCKETS];

export interface Metrics {
  readonly registry: Registry;
  /** EndpointSlice last-change-trigger-time → applied in HAProxy. */
  readonly networkProgrammingDuration: Histogram;
  /** One flush of the sync engine. */
  readonly syncDuration: Histogram;
  readonly runtimeCommands: Counter<{ result: "ok" | "error" }>;
  readonly runtimeReconnects: Counter;
  readonly reloads: Counter<{ reason: string }>;
  /** Per backend; recomputed, so `reset()` before setting. */
  readonly slots: Gauge<{ backend: string; state: "used" | "free" | "dynamic" }>;
  readonly services: Gauge;
  readonly endpoints: Gauge<{ state: "ready" | "drain" }>;
  /** Per health-checked backend: servers ready in Kubernetes that HAProxy's check marked DOWN. */
  readonly serversDown: Gauge<{ backend: string }>;
  readonly skipped: Counter<{ reason: string }>;
  /** Seconds since the epoch of the last successful sync. */
  readonly lastSyncTimestamp: Gauge;
  readonly watchRestarts: Counter<{ resource: string }>;
  /** Local mode: syncs whose capture change (nft) failed; each is followed by a full resync after a backoff. */
  readonly captureFailures: Counter;
  /** The registry in text exposition format 0.0.4. */
  render(): string;
}

export function createMetrics(registry: Registry = new Registry()): Metrics {
  const p = "kube_haproxy_";
  return {
    registry,
    networkProgrammingDuration: registry.histogram({
      name: `${p}network_programming_duration_seconds`,
      help: "Time from an EndpointSlice's last-change-trigger-time to the change being applied in HAProxy.",
      buckets: PROGRAMMING_BUCKETS,
    }),
    syncDuration: registry.histogram({
      name: `${p}sync_duration_seconds`,
      help: "Duration of one flush of the sync engine.",
      buckets: SYNC_BUCKETS,
    }),
    runtimeCommands: registry.counter({
      name: `${p}runtime_commands_total`,
      help: "Runtime API commands sent to HAProxy, by result (ok, error).",
      labelNames: ["result"],
    }),
    runtimeReconnects: registry.counter({
      name: `${p}runtime_reconnects_total`,
      help: "Reconnections of the runtime API client.",
    }),
    reloads: registry.counter({
      name: `${p}reloads_total`,
      help: "HAProxy reloads, by reason.",
      labelNames: ["reason"],
    }),
    slots: registry.gauge({
      name: `${p}slots`,
      help: "Server slots per backend, by state (used, free, dynamic).",
      labelNames: ["backend", "state"],
    }),
    services: registry.gauge({
      name: `${p}services`,
      help: "Service ports programmed in HAProxy.",
    }),
    endpoints: registry.gauge({
      name: `${p}endpoints`,
      help: "Endpoints programmed in HAProxy, by state (ready, drain).",
      labelNames: ["state"],
    }),
    serversDown: registry.gauge({
      name: `${p}servers_down`,
      help: "Servers of a health-checked backend that Kubernetes says are ready but HAProxy's health check marked DOWN.",
      labelNames: ["backend"],
    }),
    skipped: registry.counter({
      name: `${p}skipped_total`,
      help: "Kubernetes objects skipped as unusable, by reason.",
      labelNames: ["reason"],
    }),
    lastSyncTimestamp: registry.gauge({
      name: `${p}last_sync_timestamp_seconds`,
      help: "When the last sync succeeded, in seconds since the epoch.",
    }),
    watchRestarts: registry.counter({
      name: `${p}watch_restarts_total`,
      help: "Restarts of Kubernetes watches, by resource.",
      labelNames: ["resource"],
    }),
    captureFailures: registry.counter({
      name: `${p}capture_failures_total`,
      help: "Local mode: syncs whose change to the kernel's capture (nft) failed (E_CAPTURE_FAILED); a full resync follows after a backoff.",
    }),
    render: () => registry.render(),
  };
}
