// What an operator sees of a running sidecar: logs and metrics for every stage, and the
// /healthz and /livez verdicts. Nothing here changes behaviour.

import type { Dataplane } from "./dataplane/dataplane.ts";
import type { RuntimeClient } from "./haproxy/runtime-client.ts";
import type { ClusterWatch } from "./kube/watch.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { HealthStatus } from "./metrics/server.ts";
import type { Proxier } from "./proxier.ts";

/** /healthz fails when a change has waited this long to reach HAProxy (or the socket is down). */
const MAX_PENDING_MS = 30_000;

type Health = ReturnType<Dataplane["health"]>;

export function healthOf({ connected, pendingMs, lastSynced }: Health, socket: string): HealthStatus {
  if (!connected) return { healthy: false, lastUpdated: lastSynced, reason: `runtime API ${socket} not connected` };
  if (pendingMs > MAX_PENDING_MS) return { healthy: false, lastUpdated: lastSynced, reason: `a change has waited ${Math.round(pendingMs / 1000)} s` };
  return { healthy: true, lastUpdated: lastSynced };
}

/**
 * Liveness is about this process only: HAProxy being down is not cured by restarting us, but a
 * data plane that stopped applying changes while connected is.
 */
export function livenessOf({ connected, pendingMs, lastSynced }: Health): HealthStatus {
  if (connected && pendingMs > MAX_PENDING_MS) {
    return { healthy: false, lastUpdated: lastSynced, reason: `a change has waited ${Math.round(pendingMs / 1000)} s while connected` };
  }
  return { healthy: true, lastUpdated: lastSynced };
}

export interface Observed {
  readonly client: RuntimeClient;
  readonly dataplane: Dataplane;
  readonly proxier: Proxier;
  readonly watch: ClusterWatch;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Wall clock for the last-sync timestamp. */
  readonly wallNow: () => number;
  /** True once the sidecar stops: its own close of the connection is no lost connection. */
  readonly stopping: () => boolean;
  /** The `backend` label of a data-plane backend (local mode: the Service port holding a pool backend). @default its name */
  readonly backendLabel?: (backend: string) => string;
}

export function observe({ client, dataplane, proxier, watch, metrics, log, wallNow, stopping, backendLabel = (name) => name }: Observed): void {
  let connectedOnce = false;
  client.on("connect", () => {
    log.info(`connected to HAProxy's runtime API at ${client.address}`);
    if (connectedOnce) metrics.runtimeReconnects.inc();
    connectedOnce = true;
  });
  client.on("disconnect", (error) => stopping() || log.warn(`runtime API connection lost: ${error.message}`));

  // Slots per backend are read from the data plane when scraped: set on every change, they cost
  // the change's own latency (its "applied" listeners run before anything else hears of it).
  metrics.registry.onRender(() => {
    metrics.slots.reset();
    for (const status of dataplane.status()) {
      const backend = backendLabel(status.name);
      metrics.slots.set({ backend, state: "used" }, status.used);
      metrics.slots.set({ backend, state: "free" }, Math.max(0, status.slots - status.used));
      metrics.slots.set({ backend, state: "dynamic" }, status.dynamic);
    }
  });
  // Refreshed at every full read (connect, reload, --config-sync-period); `status` reads it live.
  dataplane.on("serversDown", (down) => {
    metrics.serversDown.reset();
    for (const [backend, count] of down) if (count > 0) metrics.serversDown.set({ backend: backendLabel(backend) }, count);
  });
  dataplane.on("flushed", (report) => {
    metrics.syncDuration.observe(report.durationMs / 1000);
    metrics.runtimeCommands.inc({ result: "ok" }, report.commands - report.failed);
    if (report.failed > 0) metrics.runtimeCommands.inc({ result: "error" }, report.failed);
    else metrics.lastSyncTimestamp.set(wallNow() / 1000);
  });
  dataplane.on("applied", (_backend, triggerTime, at) => {
    if (triggerTime !== undefined) metrics.networkProgrammingDuration.observe(Math.max(0, at - triggerTime) / 1000);
  });
  dataplane.on("overflow", (backend, keys) => {
    log.warn(`${backend}: ${keys.length} endpoints found no free slot (${keys.slice(0, 3).join(", ")}${keys.length > 3 ? ", …" : ""}); its algorithm takes no dynamic servers, so a reload will grow the template`);
    metrics.skipped.inc({ reason: "over-capacity" }, keys.length);
  });
  dataplane.on("invalid", (backend, endpoint, message) => {
    log.error(`${backend}: refusing endpoint ${JSON.stringify(endpoint.ip)}:${endpoint.port}: ${message}`);
    metrics.skipped.inc({ reason: "invalid-endpoint" });
  });
  dataplane.on("missing", (backend) => log.debug(`${backend} is not in HAProxy's configuration yet`));
  dataplane.on("reloaded", (_reason, _ms, kind) => metrics.reloads.inc({ reason: kind }));
  dataplane.on("reloadRefused", () => metrics.reloads.inc({ reason: "rejected" }));
  dataplane.on("reloadFailed", () => metrics.reloads.inc({ reason: "failed" }));
  // Logged by the data plane with nft's reason; the full resync it schedules repairs the map.
  dataplane.on("captureFailed", () => metrics.captureFailures.inc());
  dataplane.on("unbindable", (_backend, servicePort, why) => {
    log.error(`${servicePort}: left out of HAProxy's configuration, its address cannot be bound on this node: ${why}; tried again at the next change or resync`);
    metrics.skipped.inc({ reason: "bind-failed" });
  });
  proxier.on("skipped", (skip) => metrics.skipped.inc({ reason: skip.reason }));
  proxier.on("counts", (counts) => {
    metrics.services.set(counts.services);
    metrics.endpoints.set({ state: "ready" }, counts.ready);
    metrics.endpoints.set({ state: "drain" }, counts.drain);
  });
  watch.on("handlerError", (resource, key, error) => {
    log.error(`handling a ${resource} event of ${key} failed (a bug: this change may be missing from HAProxy): ${(error as Error)?.stack ?? String(error)}`);
    metrics.skipped.inc({ reason: "internal-error" });
  });
  watch.on("restart", (resource, reason) => {
    metrics.watchRestarts.inc({ resource });
    log.warn(`restarted the ${resource} watch (${reason})`);
  });
}
