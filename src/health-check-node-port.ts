// Mesh mode: kube-proxy's health check node ports. A LoadBalancer Service with
// externalTrafficPolicy Local has a `healthCheckNodePort`; cloud load balancers probe it on every
// node and send traffic only to nodes that answer 200, i.e. that have a ready endpoint of the
// Service. The answer is kube-proxy's (pkg/proxy/healthcheck/service_health.go), on any path:
//
//   200 (or 503 with no local endpoint)   Content-Type: application/json
//   X-Content-Type-Options: nosniff       X-Load-Balancing-Endpoint-Weight: <localEndpoints>
//   {"service": {"namespace": …, "name": …}, "localEndpoints": N, "serviceProxyHealthy": true}
//
// One HTTP server per port, opened when a Service gets one and closed when it goes. A port that
// cannot be opened (taken on the node) is logged and counted, and tried again at the Service's
// next change.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { HealthCheckNodePort } from "./kube/translate-external.ts";
import type { Logger } from "./log.ts";

export interface HealthCheckNodePortsOptions {
  readonly log: Logger;
  /**
   * Makes `server` listen on `port` at `host` (undefined: every address of the node). Tests
   * listen inside a network namespace. @default listenOn
   */
  readonly listen?: (server: Server, port: number, host: string | undefined) => Promise<void>;
  /**
   * The node's addresses to listen on, read at each opening (--nodeport-addresses, as kube-proxy
   * binds its health check servers); empty: every address. @default none
   */
  readonly hosts?: () => readonly string[];
  /** Whether the proxy itself is healthy (serviceProxyHealthy; 503 when not). @default always */
  readonly healthy?: () => boolean;
  /** A port that could not be opened. */
  readonly onError?: (service: string, port: number, error: Error) => void;
}

interface Served {
  readonly service: string;
  check: HealthCheckNodePort;
  /** One per host (one for every address when no hosts are given). */
  readonly servers: readonly Server[];
  readonly open: Promise<void>;
}

/** The body and status kube-proxy answers for one Service. */
export function healthAnswer(service: string, localEndpoints: number, healthy: boolean): { status: number; body: string } {
  const [namespace = "", name = ""] = service.split("/");
  // kube-proxy marshals with a tab indent; clients parse it, but the same bytes cost nothing.
  const body = JSON.stringify({ service: { namespace, name }, localEndpoints, serviceProxyHealthy: healthy }, null, "\t");
  return { status: localEndpoints > 0 && healthy ? 200 : 503, body };
}

function listenOn(server: Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export class HealthCheckNodePorts {
  readonly #options: HealthCheckNodePortsOptions;
  // By port: the Service that holds it, its answer, its server.
  readonly #byPort = new Map<number, Served>();
  // Service → its port.
  readonly #ports = new Map<string, number>();

  constructor(options: HealthCheckNodePortsOptions) {
    this.#options = options;
  }

  /** A Service's health check node port now (undefined: it has none, or it is gone). */
  set(service: string, check: HealthCheckNodePort | undefined): void {
    const port = this.#ports.get(service);
    if (port !== undefined && port !== check?.port) this.#close(port);
    if (check === undefined) return;
    const served = this.#byPort.get(check.port);
    if (served && served.service !== service) {
      this.#options.log.warn(`Service ${service}: healthCheckNodePort ${check.port} is already served for ${served.service}; not served`);
      return;
    }
    this.#ports.set(service, check.port);
    if (served) {
      served.check = check;
      return;
    }
    this.#open(service, check);
  }

  /** The ports served now, by Service (for tests and status). */
  ports(): Map<string, number> {
    return new Map(this.#ports);
  }

  /** Waits until every port opened so far is listening (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.#byPort.values()].map((served) => served.open));
  }

  async close(): Promise<void> {
    for (const port of [...this.#byPort.keys()]) this.#close(port);
    await this.settled();
  }

  #open(service: string, check: HealthCheckNodePort): void {
    const hosts = this.#options.hosts?.() ?? [];
    const listen = this.#options.listen ?? listenOn;
    const servers = (hosts.length === 0 ? [undefined] : hosts).map((host) => {
      const server = createServer((request, response) => this.#answer(check.port, request, response));
      return { server, listening: listen(server, check.port, host) };
    });
    const open = Promise.allSettled(servers.map((s) => s.listening)).then((results) => {
      const failure = results.find((result) => result.status === "rejected");
      if (failure === undefined) {
        this.#options.log.info(`health check node port ${check.port} open for ${service}`);
        return;
      }
      const error = failure.reason as Error;
      this.#options.log.error(`Service ${service}: cannot serve healthCheckNodePort ${check.port}: ${error.message}`);
      this.#options.onError?.(service, check.port, error);
      // All or nothing: a port served on some addresses only would mislead the load balancer.
      if (this.#byPort.get(check.port)?.servers === served.servers) this.#close(check.port);
    });
    const served: Served = { service, check, servers: servers.map((s) => s.server), open };
    this.#byPort.set(check.port, served);
  }

  #answer(port: number, _request: IncomingMessage, response: ServerResponse): void {
    const served = this.#byPort.get(port);
    if (!served) {
      response.writeHead(503).end();
      return;
    }
    const { status, body } = healthAnswer(served.service, served.check.localEndpoints, this.#options.healthy?.() ?? true);
    response.writeHead(status, {
      "Content-Type": "application/json",
      "X-Content-Type-Options": "nosniff",
      "X-Load-Balancing-Endpoint-Weight": String(served.check.localEndpoints),
    });
    response.end(body);
  }

  #close(port: number): void {
    const served = this.#byPort.get(port);
    if (!served) return;
    this.#forget(port);
    // Once listening: closing before listen() finished would leave the port open.
    void served.open.then(() => {
      for (const server of served.servers) {
        server.closeAllConnections();
        server.close();
      }
    });
  }

  #forget(port: number): void {
    const served = this.#byPort.get(port);
    this.#byPort.delete(port);
    if (served && this.#ports.get(served.service) === port) this.#ports.delete(served.service);
  }
}
