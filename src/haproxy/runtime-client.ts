// One persistent, pipelined connection to HAProxy's runtime API (the stats socket).
//
//   executeAll([c1, c2, c3, …])
//     └─ validate ─► #queue (accepted, not written)
//                      │ #pump: write while the bytes in flight stay ≤ maxInFlightBytes
//                      ▼
//                    #inFlight (written)  ── "c1\nc2\n…" ──►  HAProxy, prompt mode
//                      ▲                  ◄── "r1\n> r2\n> …" (ReplyDecoder)
//                      └─ each body settles the oldest entry; #pump writes more
//
// Replies come back in the order the commands were written, so a FIFO matches them; a reply
// with nothing waiting means the stream is out of step and the connection is dropped. On any
// break, everything in flight and queued is rejected, and we reconnect with capped exponential
// backoff; listeners of "connect" (the engine) resynchronise from `show servers state`.
//
// Three rules keep the framing exact and HAProxy answering (DESIGN.md, "versions"):
// - Bytes in flight stay below tune.bufsize. HAProxy 3.2.0–3.2.3 stop answering once a
//   pipelined batch fills the CLI's input buffer (fixed upstream in c6c2ef1f1); the rest waits
//   in #queue and goes out once half the window was answered. The window still holds ~100 commands, far
//   more than one round trip on a local socket needs, so the cap costs no throughput.
// - Open-ended commands (`expect: "any"`, e.g. `show servers state`) never share the prompt
//   connection. Prompt framing cannot delimit free text ("\n> " inside a body reads as two
//   replies), so each one goes on a connection of its own without `prompt`, where HAProxy
//   answers and closes: the reply is everything received. It is a barrier: it starts when
//   nothing is in flight and nothing is written until it is answered, so it sees every earlier
//   command applied and no later one, exactly as if it had been pipelined.
// - Progress is a complete reply. A peer that sends bytes but never a prompt times out, and
//   one that sends more than maxReplyChars without completing a reply is dropped.
// "connect" is emitted only once HAProxy has answered `prompt` with a prompt: anything else
// (the master CLI, another service on that port) fails the connection with the reason.

import { EventEmitter } from "node:events";
import { createConnection, type Socket } from "node:net";
import { KubeHaproxyError } from "../errors.ts";
import { parseSocketAddress } from "./address.ts";
import type { RuntimeCommand } from "./commands.ts";
import { Fifo } from "./fifo.ts";
import { MAX_REPLY_CHARS, ReplyDecoder, afterPromptAnswer, checkReply } from "./reply.ts";
import { singleCommand, type SingleCommand } from "./single-command.ts";

export interface RuntimeClientOptions {
  /** A Unix socket path, or `host:port` for a TCP stats socket. */
  readonly address: string;
  /** The oldest command in flight without a complete reply for this long breaks the connection. @default 10000 */
  readonly commandTimeoutMs?: number;
  /** @default 100 */
  readonly reconnectMinMs?: number;
  /** @default 5000 */
  readonly reconnectMaxMs?: number;
  /** HAProxy's tune.bufsize; a request line must fit in it minus one byte. @default 16384 */
  readonly bufsize?: number;
  /** Most bytes of command lines written and not yet answered; below bufsize. @default bufsize / 2 */
  readonly maxInFlightBytes?: number;
  /** Most characters one reply may hold (64 MiB: `show servers state` of 100,000 servers is 12–25 MB). */
  readonly maxReplyChars?: number;
}

export type CommandResult = { readonly ok: true; readonly reply: string } | { readonly ok: false; readonly error: KubeHaproxyError };

/** The commands of one executeAll: each entry fills in its result, the last one resolves them all. */
interface Batch {
  readonly results: CommandResult[];
  remaining: number;
  readonly resolve: (results: CommandResult[]) => void;
}

interface Entry {
  readonly command: RuntimeCommand;
  /** The line and its newline, in bytes. */
  readonly bytes: number;
  readonly batch: Batch;
  readonly index: number;
}

function settle({ batch, index }: Entry, result: CommandResult): void {
  batch.results[index] = result;
  if (--batch.remaining === 0) batch.resolve(batch.results);
}

type Events = { connect: []; disconnect: [error: Error] };

const HANDSHAKE: RuntimeCommand = { line: "prompt", expect: "empty" };

export class RuntimeClient extends EventEmitter<Events> {
  readonly #options: Required<RuntimeClientOptions>;
  #socket: Socket | undefined;
  // True from HAProxy's answer to `prompt` until the connection ends; commands are refused otherwise.
  #connected = false;
  // What the peer sent before its answer to `prompt` was complete.
  #greeting = "";
  // Accepted while connected, not written yet.
  #queue = new Fifo<Entry>();
  // Written on the prompt connection and not yet answered, oldest first; their bytes in total.
  #inFlight = new Fifo<Entry>();
  #inFlightBytes = 0;
  // An open-ended command on a connection of its own; nothing else is written meanwhile.
  #single: { readonly entry: Entry; readonly command: SingleCommand } | undefined;
  #decoder: ReplyDecoder;
  // When the oldest command waiting last saw progress: a complete reply, or being written to an idle pipe.
  #lastProgress = 0;
  #timer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;
  // Why the last connection ended (or never came up), for waitConnected's error.
  #lastFailure: KubeHaproxyError | undefined;

  constructor(options: RuntimeClientOptions) {
    super();
    if (!options.address) throw new KubeHaproxyError("E_BAD_OPTION", "runtime address is empty");
    const bufsize = options.bufsize ?? 16_384;
    this.#options = {
      commandTimeoutMs: 10_000,
      reconnectMinMs: 100,
      reconnectMaxMs: 5_000,
      maxInFlightBytes: Math.floor(bufsize / 2),
      maxReplyChars: MAX_REPLY_CHARS,
      ...options,
      bufsize,
    };
    const { maxInFlightBytes } = this.#options;
    if (!Number.isInteger(maxInFlightBytes) || maxInFlightBytes < 1 || maxInFlightBytes >= bufsize) {
      throw new KubeHaproxyError("E_BAD_OPTION", `maxInFlightBytes must be an integer from 1 to bufsize - 1 (${bufsize - 1}), got ${maxInFlightBytes}`);
    }
    this.#decoder = new ReplyDecoder(this.#options.maxReplyChars);
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
        const why = this.#lastFailure ? `: ${this.#lastFailure.message}` : "";
        reject(new KubeHaproxyError("E_NOT_CONNECTED", `no connection to ${this.address} after ${timeoutMs} ms${why}`, { cause: this.#lastFailure }));
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

  /** Pipelines the commands in order (as many at a time as the cap allows); each gets its own result. */
  executeAll(commands: readonly RuntimeCommand[]): Promise<CommandResult[]> {
    const results = new Array<CommandResult>(commands.length);
    if (commands.length === 0) return Promise.resolve(results);
    return new Promise((resolve) => {
      const batch: Batch = { results, remaining: commands.length, resolve };
      for (let index = 0; index < commands.length; index++) {
        const command = commands[index]!;
        const bytes = Buffer.byteLength(command.line) + 1;
        const entry = { command, bytes, batch, index };
        const refusal = this.#refuse(command, bytes);
        if (refusal) settle(entry, { ok: false, error: refusal });
        else this.#queue.push(entry);
      }
      this.#pump();
    });
  }

  #refuse(command: RuntimeCommand, bytes: number): KubeHaproxyError | undefined {
    if (!this.#connected) {
      return new KubeHaproxyError("E_NOT_CONNECTED", `not connected to ${this.address}`, { command: command.line });
    }
    // The builders validate identifiers; this is the last guard against a second command.
    if (/[\n\r]/.test(command.line)) {
      return new KubeHaproxyError("E_INVALID_IDENTIFIER", "a runtime command may not contain a line break", { command: command.line });
    }
    if (bytes > this.#options.bufsize - 1) {
      return new KubeHaproxyError("E_LINE_TOO_LONG", `command longer than tune.bufsize (${this.#options.bufsize})`, { command: command.line });
    }
    return undefined;
  }

  /** Writes queued commands while the cap allows; starts an open-ended one when the pipe is empty. */
  #pump(): void {
    if (!this.#connected || this.#single) return;
    // More goes out once half the window is free, not at every reply chunk: HAProxy answers as
    // it reads, ~10 replies a chunk, and topping the window up at each made a write (a syscall
    // on each side) per ~10 commands.
    if (this.#inFlightBytes > this.#options.maxInFlightBytes / 2) return;
    const lines: string[] = [];
    for (let next = this.#queue.peek(); next; next = this.#queue.peek()) {
      const busy = this.#inFlight.size > 0;
      if (next.command.expect === "any") {
        if (!busy) this.#sendSingle(this.#queue.shift()!);
        break;
      }
      // A line longer than the cap still goes out alone.
      if (busy && this.#inFlightBytes + next.bytes > this.#options.maxInFlightBytes) break;
      this.#writeEntry(this.#queue.shift()!);
      lines.push(next.command.line);
    }
    if (lines.length > 0) this.#socket!.write(lines.join("\n") + "\n");
  }

  #writeEntry(entry: Entry): void {
    if (this.#inFlight.size === 0) this.#waitFromNow();
    this.#inFlight.push(entry);
    this.#inFlightBytes += entry.bytes;
  }

  #connect(): void {
    this.#reconnectTimer = undefined;
    const socket = createConnection(parseSocketAddress(this.#options.address));
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.setNoDelay?.(true);
    let failure: Error | undefined;
    socket.on("connect", () => {
      // `prompt` switches to interactive mode: the connection stays open and replies are framed.
      const batch: Batch = { results: [], remaining: 1, resolve: () => {} };
      this.#writeEntry({ command: HANDSHAKE, bytes: HANDSHAKE.line.length + 1, batch, index: 0 });
      socket.write(`${HANDSHAKE.line}\n`);
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
    let bodies: string[];
    try {
      const text = this.#connected ? chunk : this.#greet(chunk);
      bodies = text === "" ? [] : this.#decoder.push(text);
    } catch (error) {
      this.#fail(error as KubeHaproxyError);
      return;
    }
    for (const body of bodies) {
      const entry = this.#inFlight.shift();
      if (!entry) {
        this.#fail(new KubeHaproxyError("E_PROTOCOL", `reply with no command waiting: ${body.slice(0, 80)}`));
        return;
      }
      this.#inFlightBytes -= entry.bytes;
      const error = checkReply(entry.command, body);
      settle(entry, error ? { ok: false, error } : { ok: true, reply: body });
    }
    if (bodies.length > 0) this.#progressed();
  }

  /** Before the answer to `prompt`: returns what follows it once complete ("" before). */
  #greet(chunk: string): string {
    this.#greeting += chunk;
    const rest = afterPromptAnswer(this.#greeting, this.address);
    if (rest === undefined) return "";
    this.#greeting = "";
    this.#inFlightBytes -= this.#inFlight.shift()!.bytes;
    this.#connected = true;
    this.#attempt = 0;
    this.#progressed();
    this.emit("connect");
    return rest;
  }

  /** Runs an open-ended command on a connection of its own (see the header). */
  #sendSingle(entry: Entry): void {
    const single = { entry, command: singleCommand(this.#options.address, entry.command.line, this.#options.maxReplyChars, entry.command.stream) };
    this.#single = single;
    this.#waitFromNow();
    single.command.reply.then(
      (body) => {
        if (this.#single !== single) return;
        this.#single = undefined;
        const error = checkReply(entry.command, body);
        settle(entry, error ? { ok: false, error } : { ok: true, reply: body });
        this.#progressed();
      },
      (error: KubeHaproxyError) => {
        if (this.#single === single) this.#fail(error);
      },
    );
  }

  /**
   * The oldest command waiting starts its timeout now. The timer is not moved per command nor
   * cleared when the pipe empties (a timer armed and cleared per change costs the hot path):
   * it fires at the latest a timeout after any start, then re-arms for the rest or lapses.
   */
  #waitFromNow(): void {
    this.#lastProgress = performance.now();
    if (this.#timer === undefined) this.#armTimer(this.#options.commandTimeoutMs);
  }

  #progressed(): void {
    this.#lastProgress = performance.now();
    this.#pump();
  }

  #armTimer(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#onTimer(), ms);
    this.#timer.unref();
  }

  #onTimer(): void {
    this.#timer = undefined;
    const entry = this.#single?.entry ?? this.#inFlight.peek();
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

  /** Drops the connection: rejects everything in flight and queued, then reconnects unless closed. */
  #fail(error: KubeHaproxyError): void {
    const socket = this.#socket;
    const wasConnected = this.#connected;
    const single = this.#single;
    this.#lastFailure = error;
    this.#socket = undefined;
    this.#single = undefined;
    this.#connected = false;
    socket?.destroy();
    single?.command.cancel();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = [...(single ? [single.entry] : []), ...this.#inFlight.drain(), ...this.#queue.drain()];
    this.#inFlightBytes = 0;
    this.#greeting = "";
    this.#decoder.reset();
    pending.forEach((entry, i) => {
      const own = i === 0 ? error : new KubeHaproxyError("E_CONNECTION_CLOSED", error.message, { command: entry.command.line, cause: error });
      settle(entry, { ok: false, error: own });
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
