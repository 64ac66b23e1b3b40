// `kube-haproxy run`: the sidecar. Wires the pipeline together and to the outside world:
//
//   ClusterWatch ──events──► Proxier ──backends──► SyncEngine ──commands──► RuntimeClient ──► HAProxy
//        │                      └──structural──► Reloader (master CLI)          ▲
//        └──────── metrics / health / logs observe every stage ────────────────┘

import type { Logger } from "./log.ts";
import type { Options } from "./options.ts";
import { Proxier } from "./proxier.ts";
import { bootstrapConfig, makeClusterWatch, translateOptions } from "./bootstrap.ts";
import { RuntimeClient } from "./haproxy/runtime-client.ts";
import type { ClusterWatch } from "./kube/watch.ts";
import { createMetrics, type Metrics } from "./metrics/metrics.ts";
import { startStatusServer, type HealthStatus, type StatusServer } from "./metrics/server.ts";
import { SyncEngine, type BackendStatus } from "./sync/engine.ts";
import { Reloader } from "./sync/reloader.ts";

export interface Sidecar {
  readonly client: RuntimeClient;
  readonly engine: SyncEngine;
  readonly proxier: Proxier;
  readonly watch: ClusterWatch;
  readonly reloader: Reloader;
  readonly metrics: Metrics;
  /** Resolves once both initial lists arrived and were handed to the engine. */
  readonly started: Promise<void>;
  /** The metrics and health server, once listening (undefined when both addresses are empty). */
  readonly statusServer: Promise<StatusServer | undefined>;
  stop(): Promise<void>;
}

/** /healthz fails when a change has waited this long to reach HAProxy (or the socket is down). */
export const MAX_PENDING_MS = 30_000;

export interface SidecarDeps {
  readonly log: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly metrics?: Metrics;
}

export function startSidecar(options: Options, deps: SidecarDeps): Sidecar {
  const { log } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const client = new RuntimeClient({ address: options.socket });
  const engine = new SyncEngine({
    client,
    log,
    minSyncPeriodMs: options.minSyncPeriodMs,
    configSyncPeriodMs: options.configSyncPeriodMs,
  });
  const proxier = new Proxier(engine, translateOptions(options), log);
  const watch = makeClusterWatch(options, log, deps.env);
  const reloader = new Reloader({
    configPath: options.config,
    masterSocket: options.masterSocket,
    haproxyBinary: options.haproxyBinary,
    minReloadPeriodMs: options.minReloadPeriodMs,
    log,
    render: () => bootstrapConfig(proxier.backends(), options),
    // The runtime socket now belongs to the new worker: reconnect, and repair from its state.
    afterReload: () => {
      client.reconnect();
      engine.requestFullSync();
    },
  });
  let stopping = false; // a deliberate close is no lost connection
  observe({ client, engine, proxier, watch, reloader, metrics, log, stopping: () => stopping });

  watch.on("service", proxier.onService);
  watch.on("endpointslice", proxier.onEndpointSlice);
  // Structure comes only from a configuration file: these are the only ways to a reload.
  proxier.on("structural", (reason) => reloader.request(reason));
  engine.on("missing", (backend) => reloader.request(`${backend} is not in HAProxy's configuration`));
  engine.on("overflow", (backend) => reloader.request(`${backend} needs more slots than its template has`, true));

  const health = (): HealthStatus => {
    const { connected, pendingMs, lastSynced } = engine.health();
    if (!connected) return { healthy: false, lastUpdated: lastSynced, reason: `runtime API ${options.socket} not connected` };
    if (pendingMs > MAX_PENDING_MS) return { healthy: false, lastUpdated: lastSynced, reason: `a change has waited ${Math.round(pendingMs / 1000)} s` };
    return { healthy: true, lastUpdated: lastSynced };
  };
  // Liveness is about this process only: HAProxy being down is not cured by restarting us,
  // but an engine that stopped applying changes while connected is.
  const live = (): HealthStatus => {
    const { connected, pendingMs, lastSynced } = engine.health();
    if (connected && pendingMs > MAX_PENDING_MS) return { healthy: false, lastUpdated: lastSynced, reason: `a change has waited ${Math.round(pendingMs / 1000)} s while connected` };
    return { healthy: true, lastUpdated: lastSynced };
  };
  const healthAddress = options.healthzBindAddress || options.metricsBindAddress;
  const statusServer = healthAddress
    ? startStatusServer({ metricsAddress: options.metricsBindAddress, healthAddress, render: () => metrics.render(), health, live }).then(
        (server) => {
          log.info(`health on ${server.healthUrl}${server.metricsUrl ? `, metrics on ${server.metricsUrl}` : ""}`);
          return server;
        },
        (error: Error) => {
          log.error(`cannot serve metrics/health: ${error.message}`);
          return undefined;
        },
      )
    : Promise.resolve(undefined);

  log.info(`waiting for HAProxy's runtime API at ${options.socket}`);
  engine.start();
  const started = (async () => {
    await watch.start();
    proxier.start();
    log.info(`initial lists received: ${proxier.backends().length} Service ports`);
    // The cluster may have changed between `render` and now.
    reloader.request("startup");
  })();

  return {
    client,
    engine,
    proxier,
    watch,
    metrics,
    started,
    statusServer,
    reloader,
    async stop() {
      stopping = true;
      await (await statusServer)?.close();
      await reloader.stop();
      await watch.stop();
      await engine.stop();
      await client.close();
    },
  };
}

/** Logs and metrics for every stage; nothing here changes behaviour. */
function observe(parts: {
  client: RuntimeClient;
  engine: SyncEngine;
  proxier: Proxier;
  watch: ClusterWatch;
  reloader: Reloader;
  metrics: Metrics;
  log: Logger;
  stopping: () => boolean;
}): void {
  const { client, engine, proxier, watch, reloader, metrics, log } = parts;
  reloader.on("reloaded", (_reason, _ms, forced) => metrics.reloads.inc({ reason: forced ? "slots" : "structural" }));
  reloader.on("rejected", () => metrics.reloads.inc({ reason: "rejected" }));
  reloader.on("failed", () => metrics.reloads.inc({ reason: "failed" }));
  let connectedOnce = false;
  client.on("connect", () => {
    log.info(`connected to HAProxy's runtime API at ${client.address}`);
    if (connectedOnce) metrics.runtimeReconnects.inc();
    connectedOnce = true;
  });
  client.on("disconnect", (error) => parts.stopping() || log.warn(`runtime API connection lost: ${error.message}`));
  engine.on("synced", (report) => {
    metrics.syncDuration.observe(report.durationMs / 1000);
    metrics.runtimeCommands.inc({ result: "ok" }, report.commands - report.failed);
    if (report.failed > 0) metrics.runtimeCommands.inc({ result: "error" }, report.failed);
    else metrics.lastSyncTimestamp.set(Date.now() / 1000);
    // After a full sync the set of backends may have changed: rebuild the per-backend gauges.
    if (report.full) {
      metrics.slots.reset();
      for (const backend of engine.status()) setSlotGauges(backend);
    }
  });
  const setSlotGauges = (status: BackendStatus): void => {
    metrics.slots.set({ backend: status.name, state: "used" }, status.used);
    metrics.slots.set({ backend: status.name, state: "free" }, Math.max(0, status.slots - status.used));
    metrics.slots.set({ backend: status.name, state: "dynamic" }, status.dynamic);
  };
  engine.on("applied", (backend, triggerTime, at) => {
    if (triggerTime !== undefined) metrics.networkProgrammingDuration.observe(Math.max(0, at - triggerTime) / 1000);
    setSlotGauges(engine.statusOf(backend));
  });
  engine.on("overflow", (backend, keys) => {
    log.warn(`${backend}: ${keys.length} endpoints found no free slot (${keys.slice(0, 3).join(", ")}${keys.length > 3 ? ", …" : ""}); its algorithm takes no dynamic servers, so a reload will grow the template`);
    metrics.skipped.inc({ reason: "over-capacity" }, keys.length);
  });
  engine.on("invalid", () => metrics.skipped.inc({ reason: "invalid-endpoint" }));
  engine.on("missing", (backend) => log.debug(`${backend} is not in HAProxy's configuration yet`));
  proxier.on("skipped", (skip) => metrics.skipped.inc({ reason: skip.reason }));
  proxier.on("counts", (counts) => {
    metrics.services.set(counts.services);
    metrics.endpoints.set({ state: "ready" }, counts.ready);
    metrics.endpoints.set({ state: "drain" }, counts.drain);
  });
  watch.on("restart", (resource, reason) => {
    metrics.watchRestarts.inc({ resource });
    log.warn(`restarted the ${resource} watch (${reason})`);
  });
}
