// The status endpoints: GET /metrics, and GET /healthz and /livez in kube-proxy's healthz shape.
//
//   metricsAddress ──► server ── /metrics
//   healthAddress  ──► server ── /healthz, /livez      (one server with all three when the addresses are equal)

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { formatHostPort, parseHostPort, type HostPort } from "../address.ts";
import { KubeHaproxyError } from "../errors.ts";

export interface HealthStatus {
  readonly healthy: boolean;
  /** When the data plane last caught up with the API server; `null` in the reply if never. */
  readonly lastUpdated: Date | undefined;
  /** Why it is unhealthy; sent only with a 503. */
  readonly reason?: string;
}

export interface StatusServerOptions {
  /** `host:port` for GET /metrics, `[::]:port` for IPv6, port 0 for any; "" turns it off. */
  readonly metricsAddress: string;
  /** `host:port` for GET /healthz and /livez. */
  readonly healthAddress: string;
  readonly render: () => string;
  readonly health: () => HealthStatus;
  /** For GET /livez: is this process itself working? @default health */
  readonly live?: () => HealthStatus;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

export interface StatusServer {
  /** `http://host:port/metrics` with the real port, if metrics are served. */
  readonly metricsUrl: string | undefined;
  /** `http://host:port/healthz` with the real port. */
  readonly healthUrl: string;
  close(): Promise<void>;
}

/** `host:port`, `[ipv6]:port` or `:port`; anything else is an E_BAD_OPTION naming `option`. */
export function parseListenAddress(value: string, option: string): HostPort {
  const address = parseHostPort(value);
  if (address) return address;
  const expected = "expected host:port such as 0.0.0.0:10256 or [::]:10256";
  throw new KubeHaproxyError("E_BAD_OPTION", `${option}: invalid address ${JSON.stringify(value)}, ${expected}`);
}

type Route = (req: IncomingMessage, res: ServerResponse) => void;

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const now = options.now ?? (() => new Date());
  const health = parseListenAddress(options.healthAddress, "healthAddress");
  const metrics = options.metricsAddress === "" ? undefined : parseListenAddress(options.metricsAddress, "metricsAddress");
  const shared = metrics !== undefined && metrics.host === health.host && metrics.port === health.port;

  const metricsRoutes = new Map<string, Route>([["/metrics", (req, res) => serveMetrics(req, res, options.render)]]);
  const healthRoute: Route = (req, res) => serveHealth(req, res, options.health, now);
  const liveRoute: Route = (req, res) => serveHealth(req, res, options.live ?? options.health, now);
  const healthRoutes = new Map<string, Route>([["/healthz", healthRoute], ["/livez", liveRoute]]);

  const servers: Server[] = [];
  const close = () => Promise.all(servers.map(closeServer)).then(() => undefined);
  try {
    const healthServer = await listen(health, shared ? new Map([...metricsRoutes, ...healthRoutes]) : healthRoutes, servers);
    const metricsServer = metrics === undefined ? undefined : shared ? healthServer : await listen(metrics, metricsRoutes, servers);
    return {
      metricsUrl: metricsServer && `${baseUrl(metricsServer)}/metrics`,
      healthUrl: `${baseUrl(healthServer)}/healthz`,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function serveMetrics(req: IncomingMessage, res: ServerResponse, render: () => string): void {
  reply(req, res, 200, "text/plain; version=0.0.4; charset=utf-8", render());
}

function serveHealth(req: IncomingMessage, res: ServerResponse, health: () => HealthStatus, now: () => Date): void {
  let status: HealthStatus;
  try {
    status = health();
  } catch (err) {
    status = { healthy: false, lastUpdated: undefined, reason: `health check failed: ${String(err)}` };
  }
  const body: Record<string, string | null> = { lastUpdated: status.lastUpdated?.toISOString() ?? null, currentTime: now().toISOString() };
  if (!status.healthy) body.reason = status.reason ?? "unhealthy";
  reply(req, res, status.healthy ? 200 : 503, "application/json", JSON.stringify(body));
}

function handle(routes: ReadonlyMap<string, Route>): Route {
  return (req, res) => {
    const route = routes.get((req.url ?? "/").split("?")[0]!);
    if (!route) return reply(req, res, 404, "text/plain; charset=utf-8", "404 page not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return reply(req, res, 405, "text/plain; charset=utf-8", "405 method not allowed\n");
    }
    try {
      route(req, res);
    } catch (err) {
      reply(req, res, 500, "text/plain; charset=utf-8", `500 internal error: ${String(err)}\n`);
    }
  };
}

function reply(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
}

function listen(address: HostPort, routes: ReadonlyMap<string, Route>, servers: Server[]): Promise<Server> {
  const server = createServer(handle(routes));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off("error", reject);
      servers.push(server);
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

function baseUrl(server: Server): string {
  // Listening on TCP (listen() above), so address() is an AddressInfo, never a path or null.
  const { address, port } = server.address() as AddressInfo;
  return `http://${formatHostPort(address, port)}`;
}
