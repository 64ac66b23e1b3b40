// Fakes for the data plane's deterministic tests: a clock driven by hand, and a runtime API
// transport that answers like HAProxy's (the replies go through the real checkReply) with
// workers, reloads, busy servers and held replies under the test's control. These test the
// scheduling; the tests against a real HAProxy test everything else.

import { EventEmitter } from "node:events";
import { KubeHaproxyError } from "../src/errors.ts";
import type { RuntimeCommand } from "../src/haproxy/commands.ts";
import { checkReply } from "../src/haproxy/reply.ts";
import type { CommandResult } from "../src/haproxy/runtime-client.ts";
import type { Transport } from "../src/dataplane/executor.ts";
import type { Reloader } from "../src/dataplane/reload.ts";
import type { Cancel, Clock } from "../src/dataplane/runner.ts";

/** Lets pending promise chains and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  #now = 1_000;
  readonly #wallBase = Date.parse("2030-01-01T00:00:00Z");
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#wallBase + this.#now;
  }

  schedule(fn: () => void, ms: number): Cancel {
    const id = ++this.#id;
    this.#timers.push({ at: this.#now + Math.max(0, ms), fn, id });
    return () => void (this.#timers = this.#timers.filter((timer) => timer.id !== id));
  }

  /** Moves time forward by `ms`, firing every timer due on the way (and what they start) in order. */
  async advance(ms = 0): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.#timers = this.#timers.filter((timer) => timer !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await settle();
    }
    this.#now = end;
  }

  /** When the next timer fires, relative to now; undefined when none is armed. */
  nextIn(): number | undefined {
    const at = Math.min(...this.#timers.map((timer) => timer.at));
    return Number.isFinite(at) ? at - this.#now : undefined;
  }
}

interface Slot {
  ip: string;
  port: number;
  state: "ready" | "drain" | "maint";
}

/** One HAProxy worker's runtime state. */
interface Worker {
  readonly pid: number;
  readonly env: Map<string, string>;
  readonly backends: Map<string, { algorithm: string; servers: Map<string, Slot> }>;
}

const HEADER =
  "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";
const ADMIN = { ready: 0, drain: 0x08, maint: 0x01 } as const;

export class FakeTransport extends EventEmitter<{ connect: []; disconnect: [error: Error] }> implements Transport {
  connected = false;
  /** Every line sent, with the worker it reached. */
  readonly sent: { pid: number; line: string }[] = [];
  /** Servers (`backend/server`) that still have connections: `del server` is refused. */
  readonly busy = new Set<string>();
  /** Replies to hold until release(): a batch stays in flight. */
  hold = false;
  /** Connections after a reload that still land on the old worker, before the new one answers. */
  staleConnects = 0;
  /** A reply to force for a line (an error HAProxy would send), else undefined. */
  refuse: (line: string) => string | undefined = () => undefined;
  #worker: Worker;
  #current: Worker;
  #held: (() => void)[] = [];
  #inFlight = new Set<(result: CommandResult) => void>();
  #nextPid = 100;

  constructor(config: string) {
    super();
    this.#worker = this.#current = this.#load(config);
  }

  get worker(): number {
    return this.#current.pid;
  }

  /** The newest worker's state of one backend: server name → slot. */
  servers(backend: string): Map<string, Slot> | undefined {
    return this.#worker.backends.get(backend)?.servers;
  }

  start(): void {
    if (this.connected) return;
    queueMicrotask(() => this.#connect());
  }

  async close(): Promise<void> {
    this.drop();
  }

  reconnect(): void {
    if (!this.connected) return;
    this.drop();
    queueMicrotask(() => this.#connect());
  }

  /** The connection breaks: everything in flight is rejected; no reconnect until start()/connectAgain(). */
  drop(): void {
    const wasConnected = this.connected;
    this.connected = false;
    this.#held = [];
    for (const settleOne of this.#inFlight) settleOne({ ok: false, error: new KubeHaproxyError("E_CONNECTION_CLOSED", "connection lost") });
    this.#inFlight.clear();
    if (wasConnected) this.emit("disconnect", new Error("connection lost"));
  }

  connectAgain(): void {
    this.#connect();
  }

  /** Answers every held command. */
  release(): void {
    for (const answer of this.#held.splice(0)) answer();
  }

  /** A reload as the master does it: a new worker from `config`. */
  load(config: string): number {
    this.#worker = this.#load(config);
    return this.#worker.pid;
  }

  execute(command: RuntimeCommand): Promise<string> {
    return this.executeAll([command]).then(([result]) => {
      if (!result!.ok) throw result!.error;
      return result!.reply;
    });
  }

  executeAll(commands: readonly RuntimeCommand[]): Promise<CommandResult[]> {
    return Promise.all(
      commands.map(
        (command) =>
          new Promise<CommandResult>((resolve) => {
            if (!this.connected) return resolve({ ok: false, error: new KubeHaproxyError("E_NOT_CONNECTED", "not connected") });
            this.#inFlight.add(resolve);
            const worker = this.#current;
            const answer = (): void => {
              if (!this.#inFlight.delete(resolve)) return;
              this.sent.push({ pid: worker.pid, line: command.line });
              let body = this.refuse(command.line) ?? this.#run(worker, command.line);
              // As the runtime client does: a streamed reply goes to its reader, and is empty.
              if (command.stream) {
                command.stream(body);
                body = "";
              }
              const error = checkReply(command, body);
              resolve(error ? { ok: false, error } : { ok: true, reply: body });
            };
            if (this.hold) this.#held.push(answer);
            else queueMicrotask(answer);
          }),
      ),
    );
  }

  #connect(): void {
    if (this.connected) return;
    const stale = this.staleConnects > 0 && this.#current !== this.#worker;
    if (stale) this.staleConnects--;
    else this.#current = this.#worker;
    this.connected = true;
    this.emit("connect");
  }

  #load(config: string): Worker {
    const worker: Worker = { pid: this.#nextPid++, env: new Map(), backends: new Map() };
    let backend: { algorithm: string; servers: Map<string, Slot> } | undefined;
    for (const line of config.split("\n")) {
      const words = line.trim().split(/\s+/);
      if (words[0] === "setenv") worker.env.set(words[1]!, words[2]!);
      else if (words[0] === "backend" || words[0] === "listen") worker.backends.set(words[1]!, (backend = { algorithm: "roundrobin", servers: new Map() }));
      else if (words[0] === "frontend" || words[0] === "defaults") backend = undefined;
      else if (backend && words[0] === "balance") backend.algorithm = words[1]!;
      else if (backend && words[0] === "server-template") {
        const [from, to] = words[2]!.split("-").map(Number) as [number, number];
        for (let slot = from; slot <= to; slot++) backend.servers.set(`s${slot}`, { ip: "0.0.0.0", port: 0, state: "maint" });
      } else if (backend && words[0] === "server") {
        const [, ip, port] = /^\[?(.*?)\]?:(\d+)$/.exec(words[2]!)!;
        backend.servers.set(words[1]!, { ip: ip!, port: Number(port), state: words[3] === "disabled" ? "maint" : "ready" });
      }
    }
    return worker;
  }

  #run(worker: Worker, line: string): string {
    if (worker !== this.#worker && /^(set|add|del) server/.test(line)) return "Proxy is disabled.";
    const words = line.split(" ");
    if (line === "show servers state") {
      let body = HEADER;
      let id = 0;
      for (const [name, backend] of worker.backends) {
        id++;
        let sid = 0;
        for (const [server, slot] of backend.servers) {
          body += `${id} ${name} ${++sid} ${server} ${slot.ip} 2 ${ADMIN[slot.state]} 1 1 0 1 0 0 8 0 0 0 - ${slot.port} - 0 0 - - 0\n`;
        }
      }
      return body.slice(0, -1);
    }
    if (words[0] === "show" && words[1] === "env") return worker.env.has(words[2]!) ? `${words[2]}=${worker.env.get(words[2]!)}` : "Variable not found";
    if (line === "show info") return `Name: HAProxy\nPid: ${worker.pid}`;
    const [backendName, serverName] = (words[2] ?? "").split("/") as [string, string];
    const backend = worker.backends.get(backendName);
    if (!backend) return "No such backend.";
    const server = backend.servers.get(serverName);
    if (words[0] === "add") {
      if (!["roundrobin", "leastconn", "first", "random"].includes(backend.algorithm)) return "Backend must use a dynamic load balancing to support dynamic servers.";
      const [, ip, port] = /^\[?(.*?)\]?:(\d+)$/.exec(words[3]!)!;
      backend.servers.set(serverName, { ip: ip!, port: Number(port), state: "maint" });
      return "New server registered.";
    }
    if (!server) return "No such server.";
    if (words[0] === "del") {
      if (server.state !== "maint") return "Only servers in maintenance mode can be deleted.";
      if (this.busy.has(`${backendName}/${serverName}`)) return "Server still has connections attached to it, cannot remove it.";
      backend.servers.delete(serverName);
      return "Server deleted.";
    }
    if (words[3] === "addr") {
      const before = server.ip;
      server.ip = words[4]!;
      server.port = Number(words[6]);
      return `IP changed from '${before}' to '${server.ip}' by 'stats socket command'`;
    }
    server.state = words[4] as Slot["state"];
    return "";
  }
}

/** The master's reload, against the fake: a new worker from the text, or the failure asked for. */
export class FakeReloader implements Reloader {
  readonly configs: string[] = [];
  /** Makes the next reloads throw this. */
  failWith: KubeHaproxyError | undefined;
  readonly #transport: FakeTransport;

  constructor(transport: FakeTransport) {
    this.#transport = transport;
  }

  async reload(config: string): Promise<number> {
    this.configs.push(config);
    if (this.failWith) throw this.failWith;
    return this.#transport.load(config);
  }
}
