// A loopback "pod" that shuts down like a well-behaved application on SIGTERM, for the bench:
//
//   stop(): stop accepting (the listening socket is closed; open connections are not touched)
//           ─► a request in flight finishes normally
//           ─► the next request on an open keep-alive connection is answered with
//              `Connection: close`, then that connection is closed by the server
//           ─► connections that stay idle for the whole grace period are closed after it
//              (the kubelet's SIGKILL after terminationGracePeriodSeconds)
//
// src/sim/pods.ts's pods destroy every open connection at once instead, which no real
// application does and which makes any keep-alive client through a tcp-mode proxy fail.
//
// The HTTP server never listens itself: a plain net.Server accepts and hands each socket over,
// so that closing the listener does not also close idle connections (http.Server.close() does
// that since Node 19, which races with a client sending its next request on them).

import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { freePort } from "./pods.ts";

export interface GracefulPod {
  readonly ip: string;
  readonly port: number;
  /** Requests this pod has served. */
  readonly served: number;
  /** Graceful stop; resolves when every connection is closed. Idempotent. */
  stop(graceMs?: number): Promise<StopReport>;
}

export interface StopReport {
  /** Connections closed by answering a request with `Connection: close`. */
  readonly closedAfterResponse: number;
  /** Connections still idle when the grace period ended, then destroyed. */
  readonly closedAtGraceEnd: number;
}

export async function startGracefulPod(ip: string, port = 0): Promise<GracefulPod> {
  let served = 0;
  let stopping = false;
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
  let closedAfterResponse = 0;
  const http = createHttpServer((req, res: ServerResponse) => {
    served++;
    busy.add(req.socket);
    req.resume();
    res.setHeader("content-type", "text/plain");
    // Node closes the connection after this response when the header says so.
    if (stopping) {
      res.setHeader("connection", "close");
      closedAfterResponse++;
    }
    res.on("finish", () => busy.delete(req.socket));
    res.end(`${ip}\n`);
  });
  http.keepAliveTimeout = 65_000;
  const net = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      busy.delete(socket);
      if (stopping && sockets.size === 0) allClosed?.();
    });
    http.emit("connection", socket);
  });
  await new Promise<void>((resolve, reject) => {
    net.once("error", reject);
    net.listen({ host: ip, port }, resolve);
  });
  const bound = (net.address() as AddressInfo).port;
  let allClosed: (() => void) | undefined;
  let stopped: Promise<StopReport> | undefined;
  return {
    ip,
    port: bound,
    get served() {
      return served;
    },
    stop(graceMs = 5_000) {
      stopped ??= (async () => {
        stopping = true;
        const listenerClosed = new Promise<void>((resolve) => net.close(() => resolve()));
        let closedAtGraceEnd = 0;
        if (sockets.size > 0) {
          const drained = new Promise<void>((resolve) => (allClosed = resolve));
          let timer: NodeJS.Timeout | undefined;
          const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
          await Promise.race([drained, grace]);
          clearTimeout(timer);
          for (const socket of sockets) {
            closedAtGraceEnd++;
            socket.destroy();
          }
        }
        await listenerClosed;
        return { closedAfterResponse, closedAtGraceEnd };
      })();
      return stopped;
    },
  };
}

/** Starts `count` pods on 127.<base>.x.y addresses, all on one port (as a Service's pods). */
export async function startGracefulPods(count: number, base: number, port = 0): Promise<GracefulPod[]> {
  const pods: GracefulPod[] = [];
  const shared = port || (await freePort());
  for (let i = 1; i <= count; i++) pods.push(await startGracefulPod(`127.${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`, shared));
  return pods;
}
