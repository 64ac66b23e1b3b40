// `kube-haproxy run`: the sidecar. Wires the pipeline together and to the outside world:
//
//   ClusterWatch ──events──► Proxier ──desired backends──► Dataplane ──► RuntimeClient ──► HAProxy
//                                                            └── reloads: MasterReloader (master CLI)
//        └──────── metrics / health / logs observe every stage (observe.ts) ─────────┘

import { clusterWatch, renderOptions, translateOptions } from "./compose.ts";
import { Dataplane } from "./dataplane/dataplane.ts";
import { probeBind, type BindProbe } from "./dataplane/bind-check.ts";
import { MasterReloader } from "./dataplane/reload.ts";
import type { NftOptions } from "./capture/index.ts";
import { parseSocketAddress } from "./haproxy/address.ts";
import { renderPoolConfig } from "./haproxy/render-pool.ts";
import { HealthCheckNodePorts, type HealthCheckNodePortsOptions } from "./health-check-node-port.ts";
import { localOptions, nodePortHosts, nodeZone } from "./local-mode.ts";
import { RuntimeClient } from "./haproxy/runtime-client.ts";
import type { ClusterWatch } from "./kube/watch.ts";
import type { Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics/metrics.ts";
import { startStatusServer, type StatusServer } from "./metrics/server.ts";
import { healthOf, livenessOf, observe } from "./observe.ts";
import type { Options } from "./options.ts";
import { Proxier } from "./proxier.ts";

export interface Sidecar {
  readonly client: RuntimeClient;
  /** The one owner of what HAProxy runs: endpoint changes and reloads. */
  readonly dataplane: Dataplane;
  readonly proxier: Proxier;
  /** Mesh mode: the health check node ports served. */
  readonly healthChecks: HealthCheckNodePorts | undefined;
  readonly watch: ClusterWatch;
  readonly metrics: Metrics;
  /** Resolves once both initial lists arrived and the data plane may sync. */
  readonly started: Promise<void>;
  /** The metrics and health server, once listening (undefined when both addresses are empty). */
  readonly statusServer: Promise<StatusServer | undefined>;
  stop(): Promise<void>;
}

export interface SidecarDeps {
  readonly log: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly metrics?: Metrics;
  /** Local mode: how to run nft (tests run it inside a network namespace). @default ["nft"] */
  readonly nft?: NftOptions;
  /** Mesh mode: how a health check node port listens (tests listen inside a network namespace). @default every address */
  readonly listenHealthCheck?: HealthCheckNodePortsOptions["listen"];
  /** The reload's pre-flight bind check (tests inject one that cannot see a conflict). @default probeBind */
  readonly bindProbe?: BindProbe;
}

/**
 * Reconnect cap of the runtime client. A local socket costs nothing to try, and while we are
 * not connected HAProxy serves whatever its file says: after an HAProxy restart it must be
 * back in step within half a second.
 */
const RECONNECT_MAX_MS = { unix: 200, tcp: 1_000 };

export function startSidecar(options: Options, deps: SidecarDeps): Sidecar {
  const { log } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const local = "path" in parseSocketAddress(options.socket);
  const localMode = options.proxyMode !== "onlyfetch" ? localOptions(options, log, deps.nft) : undefined;
  const client = new RuntimeClient({ address: options.socket, reconnectMaxMs: local ? RECONNECT_MAX_MS.unix : RECONNECT_MAX_MS.tcp });
  const dataplane = new Dataplane({
    transport: client,
    log,
    minSyncPeriodMs: options.minSyncPeriodMs,
    configSyncPeriodMs: options.configSyncPeriodMs,
    reload: {
      reloader: new MasterReloader({ configPath: options.config, masterSocket: options.masterSocket, haproxyBinary: options.haproxyBinary }),
      render: renderOptions(options),
      minReloadPeriodMs: options.minReloadPeriodMs,
      probe: deps.bindProbe ?? probeBind,
      ...(options.proxyMode !== "onlyfetch" ? { renderer: renderPoolConfig } : {}),
    },
    ...(localMode ? { local: localMode.local } : {}),
  });
  // Local mode: the zone is filled in from the Node before proxier.start(); nothing is translated before.
  const node: { readonly nodeName: string; zone?: string } = { nodeName: options.nodeName };
  const proxier = new Proxier(dataplane, translateOptions(options, node), log);
  const watch = clusterWatch(options, log, deps.env);
  let stopping = false;
  observe({ client, dataplane, proxier, watch, metrics, log, wallNow: Date.now, stopping: () => stopping, ...(localMode ? { backendLabel: localMode.holderOf } : {}) });
  // Mesh: the health check node ports of eTP Local LoadBalancer Services, kube-proxy's answer.
  const healthChecks = options.proxyMode === "mesh"
    ? new HealthCheckNodePorts({
        log,
        healthy: () => healthOf(dataplane.health(), options.socket).healthy,
        onError: () => metrics.skipped.inc({ reason: "health-check-port-failed" }),
        hosts: () => nodePortHosts(options),
        ...(deps.listenHealthCheck ? { listen: deps.listenHealthCheck } : {}),
      })
    : undefined;
  if (healthChecks) proxier.on("healthCheckNodePort", (service, check) => healthChecks.set(service, check));
  watch.on("service", proxier.onService);
  watch.on("endpointslice", proxier.onEndpointSlice);

  const healthAddress = options.healthzBindAddress || options.metricsBindAddress;
  const statusServer = healthAddress
    ? startStatusServer({
        metricsAddress: options.metricsBindAddress,
        healthAddress,
        render: () => metrics.render(),
        health: () => healthOf(dataplane.health(), options.socket),
        live: () => livenessOf(dataplane.health()),
      }).then(
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
  // Connected at once, but nothing is sent to HAProxy before both lists are in: until then it
  // keeps serving what it has.
  dataplane.start();
  const started = (async () => {
    await watch.start();
    if (options.proxyMode !== "onlyfetch") node.zone = await nodeZone(options, deps.env, log);
    proxier.start();
    log.info(`initial lists received: ${proxier.backends().length} Service ports`);
    dataplane.beginSync();
  })();

  return {
    client,
    dataplane,
    proxier,
    healthChecks,
    watch,
    metrics,
    started,
    statusServer,
    async stop() {
      stopping = true;
      await (await statusServer)?.close();
      await watch.stop();
      await healthChecks?.close();
      await dataplane.stop();
    },
  };
}
