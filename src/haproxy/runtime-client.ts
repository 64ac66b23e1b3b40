// One persistent, pipelined connection to HAProxy's runtime API (the stats socket).
//
//   executeAll([c1, c2, c3])                     socket (prompt mode)
//     ├─ validate lines ──► write "c1\nc2\nc3\n" ──────────────►  HAProxy runs them in order
//     └─ push c1,c2,c3 on #inFlight (FIFO)   ◄── "r1\n> r2\n> r3\n> " (ReplyDecoder)
//                                               each body shifts the FIFO and settles that entry
//
// Replies come back in the order the commands were written, so a FIFO matches them; a reply
// with nothing waiting means the stream is out of step and the connection is dropped. On any
// break, everything in flight is rejected, and we reconnect with capped exponential backoff;
// listeners of "connect" (the engine) resynchronise from `show servers state`.

import { EventEmitter } from "node:events";
import { createConnection, type Socket } from "node:net";
import { KubeHaproxyError } from "../errors.ts";
import { parseSocketAddress } from "./address.ts";
import type { RuntimeCommand } from "./commands.ts";
import { ReplyDecoder, checkReply } from "./reply.ts";

export interface RuntimeClientOptions {
  /** A Unix socket path, or `host:port` for a TCP stats socket. */
  readonly address: string;
  /** A command without reply for this long breaks the connection. @default 10000 */
  readonly commandTimeoutMs?: number;
  /** @default 100 */
  readonly reconnectMinMs?: number;
  /** @default 5000 */
  readonly reconnectMaxMs?: number;
  /** HAProxy's tune.bufsize; a request line must fit in it minus one byte. @default 16384 */
  readonly bufsize?: number;
}

export type CommandResult = { readonly ok: true; readonly reply: string } | { readonly ok: false; readonly error: KubeHaproxyError };

interface InFlight {
  readonly command: RuntimeCommand;
  readonly settle: (result: CommandResult) => void;
}

type Events = { connect: []; disconnect: [error: Error] };

export class RuntimeClient extends EventEmitter<Events> {
  readonly #options: Required<RuntimeClientOptions>;
  #socket: Socket | undefined;
  // True between the socket's "connect" and its end; commands are refused otherwise.
  #connected = false;
  // FIFO of commands written and not yet answered; entries before #head are done.
  #inFlight: (InFlight | undefined)[] = [];
  #head = 0;
  #decoder = new ReplyDecoder();
  // When the oldest in-flight command last saw progress (a reply, or being written to an idle pipe).
  #lastProgress = 0;
  #timer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;

  constructor(options: RuntimeClientOptions) {
    super();
    if (!options.address) throw new KubeHaproxyError("E_BAD_OPTION", "runtime address is empty");
    this.#options = { commandTimeoutMs: 10_000, reconnectMinMs: 100, reconnectMaxMs: 5_000, bufsize: 16_384, ...options };
  }

  get connected(): boolean {
    return this.#connected;
  }

  get address(): string {
    return this.#options.address;
  }

  /** Starts connecting; keeps reconnecting until close(). */
  start(): void {
    this.#closed = false;
    if (!this.#socket && !this.#reconnectTimer) this.#connect();
  }

  /** Resolves once connected (or rejects after `timeoutMs`). */
  async waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.#connected) return;
    this.start();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("connect", onConnect);
        reject(new KubeHaproxyError("E_NOT_CONNECTED", `no connection to ${this.address} after ${timeoutMs} ms`));
      }, timeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.once("connect", onConnect);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#fail(new KubeHaproxyError("E_CONNECTION_CLOSED", "runtime client closed"));
  }

  /**
   * Drops the connection and connects again at once: after a reload the runtime socket
   * belongs to the new worker, while this connection still talks to the old one.
   */
  reconnect(): void {
    if (this.#closed) return;
    this.#attempt = 0;
    if (this.#socket) this.#fail(new KubeHaproxyError("E_CONNECTION_CLOSED", "reconnecting to the new HAProxy worker"));
  }

  /** Sends one command; resolves with its reply body or rejects with a KubeHaproxyError. */
  async execute(command: RuntimeCommand): Promise<string> {
    const [result] = await this.executeAll([command]);
    if (!result!.ok) throw result!.error;
    return result!.reply;
  }

  /** Pipelines all commands in one write; every command gets its own result, in order. */
  executeAll(commands: readonly RuntimeCommand[]): Promise<CommandResult[]> {
    const results = new Array<CommandResult>(commands.length);
    if (commands.length === 0) return Promise.resolve(results);
    return new Promise((resolve) => {
      let remaining = commands.length;
      const settleAt = (i: number) => (result: CommandResult): void => {
        results[i] = result;
        if (--remaining === 0) resolve(results);
      };
      const lines: string[] = [];
      for (let i = 0; i < commands.length; i++) {
        const command = commands[i]!;
        const refusal = this.#refuse(command);
        if (refusal) settleAt(i)({ ok: false, error: refusal });
        else {
          lines.push(command.line);
          this.#push({ command, settle: settleAt(i) });
        }
      }
      if (lines.length > 0) this.#socket!.write(lines.join("\n") + "\n");
    });
  }

  #refuse(command: RuntimeCommand): KubeHaproxyError | undefined {
    if (!this.#connected) {
      return new KubeHaproxyError("E_NOT_CONNECTED", `not connected to ${this.address}`, { command: command.line });
    }
    // The builders validate identifiers; this is the last guard against a second command.
    if (/[\n\r]/.test(command.line)) {
      return new KubeHaproxyError("E_INVALID_IDENTIFIER", "a runtime command may not contain a line break", { command: command.line });
    }
    if (Buffer.byteLength(command.line) + 1 > this.#options.bufsize - 1) {
      return new KubeHaproxyError("E_LINE_TOO_LONG", `command longer than tune.bufsize (${this.#options.bufsize})`, { command: command.line });
    }
    return undefined;
  }

  #push(entry: InFlight): void {
    if (this.#head === this.#inFlight.length) {
      this.#lastProgress = performance.now();
      this.#armTimer(this.#options.commandTimeoutMs);
    }
    this.#inFlight.push(entry);
  }

  #connect(): void {
    this.#reconnectTimer = undefined;
    const socket = createConnection(parseSocketAddress(this.#options.address));
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.setNoDelay?.(true);
    let failure: Error | undefined;
    socket.on("connect", () => {
      this.#connected = true;
      this.#attempt = 0;
      // `prompt` switches to interactive mode: the connection stays open and replies are framed.
      socket.write("prompt\n");
      this.#push({ command: { line: "prompt", expect: "empty" }, settle: () => {} });
      this.emit("connect");
    });
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", (error) => {
      failure = error;
    });
    socket.on("close", () => {
      if (this.#socket !== socket) return;
      const reason = failure ?? new Error("connection closed by HAProxy");
      this.#fail(new KubeHaproxyError("E_CONNECTION_CLOSED", `runtime connection to ${this.address} lost: ${reason.message}`, { cause: reason }));
    });
  }

  #onData(chunk: string): void {
    for (const body of this.#decoder.push(chunk)) {
      const entry = this.#inFlight[this.#head];
      if (!entry) {
        this.#fail(new KubeHaproxyError("E_PROTOCOL", `reply with no command waiting: ${body.slice(0, 80)}`));
        return;
      }
      this.#inFlight[this.#head++] = undefined; // let the settled entry be collected
      const error = checkReply(entry.command, body);
      entry.settle(error ? { ok: false, error } : { ok: true, reply: body });
    }
    this.#lastProgress = performance.now();
    if (this.#head === this.#inFlight.length) {
      this.#inFlight = [];
      this.#head = 0;
      clearTimeout(this.#timer);
      this.#timer = undefined;
    } else if (this.#head > 4096 && this.#head * 2 > this.#inFlight.length) {
      this.#inFlight = this.#inFlight.slice(this.#head);
      this.#head = 0;
    }
  }

  #armTimer(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#onTimer(), ms);
    this.#timer.unref();
  }

  #onTimer(): void {
    const entry = this.#inFlight[this.#head];
    if (!entry) return;
    const waited = performance.now() - this.#lastProgress;
    if (waited < this.#options.commandTimeoutMs) {
      this.#armTimer(this.#options.commandTimeoutMs - waited);
      return;
    }
    this.#fail(
      new KubeHaproxyError("E_COMMAND_TIMEOUT", `no reply to "${entry.command.line}" within ${this.#options.commandTimeoutMs} ms`, {
        command: entry.command.line,
      }),
    );
  }

  /** Drops the connection: rejects everything in flight, then reconnects unless closed. */
  #fail(error: KubeHaproxyError): void {
    const socket = this.#socket;
    const wasConnected = this.#connected;
    this.#socket = undefined;
    this.#connected = false;
    socket?.destroy();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#inFlight.slice(this.#head);
    this.#inFlight = [];
    this.#head = 0;
    this.#decoder.reset();
    pending.forEach((entry, i) => {
      if (!entry) return;
      const own = i === 0 ? error : new KubeHaproxyError("E_CONNECTION_CLOSED", error.message, { command: entry.command.line, cause: error });
      entry.settle({ ok: false, error: own });
    });
    if (wasConnected) this.emit("disconnect", error);
    if (!this.#closed && socket) this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const { reconnectMinMs, reconnectMaxMs } = this.#options;
    // The first attempt is immediate (a reload, a restart); then capped exponential backoff.
    const delay = this.#attempt === 0 ? 0 : Math.min(reconnectMaxMs, reconnectMinMs * 2 ** (this.#attempt - 1));
    this.#attempt++;
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }
}

