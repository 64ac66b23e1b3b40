// A small program the netns harness starts inside a network namespace (`ip netns exec <ns> node
// netns-agent.ts`): Node cannot enter a namespace itself, so every socket a test needs there is
// opened by this process. One JSON request per stdin line, one JSON answer per stdout line:
//   {"id":1,"op":"serve-http","host":"198.18.2.2","port":8080,"body":"pod1"}  -> {"id":1,"ok":true}
//   {"id":2,"op":"http","host":"198.18.128.10","port":80,"timeoutMs":2000}   -> {"id":2,"ok":true,"value":{"kind":"response",…}}

import { createSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { connect } from "node:net";
import { createInterface } from "node:readline";

/** What one attempt to talk to an address came to; the tests assert on `kind`. */
export type Outcome =
  | { readonly kind: "response"; readonly status: number; readonly body: string }
  | { readonly kind: "refused" } // ECONNREFUSED: a RST answered the SYN (a reject rule, no listener)
  | { readonly kind: "closed" } // connected, then closed without an answer (HAProxy with no server)
  | { readonly kind: "timeout" } // nothing came back (a packet dropped)
  | { readonly kind: "error"; readonly code: string };

export type Request =
  | { readonly op: "serve-http"; readonly host: string; readonly port: number; readonly body: string }
  | { readonly op: "serve-udp"; readonly host: string; readonly port: number; readonly body: string }
  | { readonly op: "http"; readonly host: string; readonly port: number; readonly timeoutMs: number }
  | { readonly op: "udp"; readonly host: string; readonly port: number; readonly message: string; readonly timeoutMs: number };

function serveHttp(host: string, port: number, body: string): Promise<unknown> {
  const server = createHttpServer((_req, res) => res.end(body));
  return new Promise((resolve, reject) => server.once("error", reject).listen(port, host, () => resolve(null)));
}

/** Answers every datagram with `<body>:<datagram>`, like a DNS server names itself. */
function serveUdp(host: string, port: number, body: string): Promise<unknown> {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  socket.on("message", (message, peer) => socket.send(`${body}:${message}`, peer.port, peer.address));
  return new Promise((resolve, reject) => socket.once("error", reject).bind(port, host, () => resolve(null)));
}

/** One HTTP/1.0 GET over a plain TCP connection, so that refused, closed and timed out stay apart. */
function http(host: string, port: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = "";
    let connected = false;
    const done = (outcome: Outcome): void => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setEncoding("utf8");
    socket.setTimeout(timeoutMs, () => done({ kind: "timeout" }));
    socket.on("connect", () => {
      connected = true;
      socket.write(`GET / HTTP/1.0\r\nHost: ${host.includes(":") ? `[${host}]` : host}\r\n\r\n`);
    });
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") done({ kind: "refused" });
      else if (connected && data === "" && (error.code === "ECONNRESET" || error.code === "EPIPE")) done({ kind: "closed" });
      else done({ kind: "error", code: error.code ?? error.message });
    });
    socket.on("end", () => {
      const match = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(data);
      done(match ? { kind: "response", status: Number(match[1]), body: match[2]! } : data === "" ? { kind: "closed" } : { kind: "error", code: `bad reply ${JSON.stringify(data.slice(0, 80))}` });
    });
  });
}

function udp(host: string, port: number, message: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
    const done = (outcome: Outcome): void => {
      clearTimeout(timer);
      socket.close();
      resolve(outcome);
    };
    const timer = setTimeout(() => done({ kind: "timeout" }), timeoutMs);
    socket.on("message", (reply) => done({ kind: "response", status: 0, body: reply.toString() }));
    socket.on("error", (error: NodeJS.ErrnoException) => done(error.code === "ECONNREFUSED" ? { kind: "refused" } : { kind: "error", code: error.code ?? error.message }));
    socket.connect(port, host, () => socket.send(message));
  });
}

function handle(request: Request): Promise<unknown> {
  switch (request.op) {
    case "serve-http":
      return serveHttp(request.host, request.port, request.body);
    case "serve-udp":
      return serveUdp(request.host, request.port, request.body);
    case "http":
      return http(request.host, request.port, request.timeoutMs);
    case "udp":
      return udp(request.host, request.port, request.message, request.timeoutMs);
  }
}

if (import.meta.main) {
  createInterface({ input: process.stdin }).on("line", (line) => {
    const { id, ...request } = JSON.parse(line) as Request & { id: number };
    handle(request).then(
      (value) => process.stdout.write(JSON.stringify({ id, ok: true, value }) + "\n"),
      (error: Error) => process.stdout.write(JSON.stringify({ id, ok: false, error: error.message }) + "\n"),
    );
  });
  // The harness closes stdin to stop the agent; SIGKILL is its fallback.
  process.stdin.on("end", () => process.exit(0));
}
