// Loopback "pods": real HTTP servers, each on its own 127.x.y.z address (all of 127/8 is
// loopback), answering with their own address so a test can see who served a request.

import { createServer, request, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";

export interface Pod {
  readonly ip: string;
  readonly port: number;
  /** Requests this pod has served. */
  readonly served: number;
  stop(): Promise<void>;
}

export async function startPod(ip: string, port = 0): Promise<Pod> {
  let served = 0;
  const server: Server = createServer((req, res) => {
    served++;
    req.resume();
    res.setHeader("content-type", "text/plain");
    res.end(`${ip}\n`);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: ip, port }, resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    ip,
    port: bound,
    get served() {
      return served;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Starts `count` pods on 127.<base>.x.y addresses, all on the same port (as a Service's pods). */
export async function startPods(count: number, options: { base?: number; port?: number; first?: number } = {}): Promise<Pod[]> {
  const base = options.base ?? 1;
  const first = options.first ?? 1;
  const port = options.port ?? (await freePort());
  const pods: Pod[] = [];
  for (let i = first; i < first + count; i++) pods.push(await startPod(`127.${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`, port));
  return pods;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One HTTP GET on a new connection; resolves with the body (the serving pod's address). */
export function get(url: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`HTTP ${res.statusCode}: ${body.trim()}`))));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Sends `count` requests on new connections and counts answers per pod address. */
export async function spread(url: string, count: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const who = await get(url);
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}
