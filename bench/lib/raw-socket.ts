// The "raw socket limit": the least a client can do to push command lines through HAProxy's
// runtime API. One connection, `prompt`, every line in one write, and a count of reply
// terminators ("\n> ") until each line has had its reply. No validation, no per-command
// promise, no reply parsing: the ceiling the runtime client and the engine are compared to.
// Whether the commands worked is for the caller to check afterwards (`show servers state`).

import { connect, type Socket } from "node:net";
import { parseSocketAddress } from "../../src/haproxy/address.ts";

export interface RawRunOptions {
  /** Give up when the replies are not all in after this long. @default 60000 */
  readonly timeoutMs?: number;
}

const PROMPT = Buffer.from("\n> ");

/**
 * Connects to `address` (a Unix socket path, or host:port), switches to prompt mode and then
 * writes `lines` pipelined in one write. Resolves with the ms from that write (payload
 * building included) until the last reply's terminator; connecting and `prompt` are not timed,
 * as a persistent client pays them once.
 */
export async function rawSocketRun(address: string, lines: readonly string[], options: RawRunOptions = {}): Promise<number> {
  const socket = connect(parseSocketAddress(address));
  try {
    const counter = new TerminatorCounter(socket, options.timeoutMs ?? 60_000);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.write("prompt\n");
    await counter.until(1);
    if (lines.length === 0) return 0;
    const started = performance.now();
    socket.write(lines.join("\n") + "\n");
    await counter.until(1 + lines.length);
    return performance.now() - started;
  } finally {
    socket.destroy();
  }
}

/** Counts "\n> " in a socket's byte stream, including terminators split across two chunks. */
class TerminatorCounter {
  #seen = 0;
  // The last two bytes of the previous chunk, for a terminator that straddles two chunks.
  #carry = Buffer.alloc(0);
  #want = Infinity;
  #wake: (() => void) | undefined;
  #failure: Error | undefined;
  #fail: ((error: Error) => void) | undefined;
  readonly #timeoutMs: number;

  constructor(socket: Socket, timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    const onEnd = (error?: Error): void => {
      this.#failure ??= error ?? new Error(`connection closed after ${this.#seen} replies`);
      this.#fail?.(this.#failure);
    };
    socket.on("error", onEnd);
    socket.on("close", () => onEnd());
  }

  #onData(chunk: Buffer): void {
    if (this.#carry.length > 0) {
      const joint = Buffer.concat([this.#carry, chunk.subarray(0, PROMPT.length - 1)]);
      if (joint.indexOf(PROMPT) !== -1) this.#seen++;
    }
    for (let at = chunk.indexOf(PROMPT); at !== -1; at = chunk.indexOf(PROMPT, at + PROMPT.length)) this.#seen++;
    // The stream's last two bytes, which may span this chunk and the carry before it.
    const keep = PROMPT.length - 1;
    this.#carry = chunk.length >= keep ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.concat([this.#carry, chunk]).subarray(-keep);
    if (this.#seen >= this.#want) this.#wake?.();
  }

  /** Resolves once `count` terminators have been seen in total. */
  until(count: number): Promise<void> {
    if (this.#seen >= count) return Promise.resolve();
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`only ${this.#seen} of ${count} replies after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.#want = Infinity;
        this.#wake = this.#fail = undefined;
        if (error) reject(error);
        else resolve();
      };
      this.#want = count;
      this.#wake = () => finish();
      this.#fail = finish;
    });
  }
}

/**
 * One command on a fresh connection without `prompt`: HAProxy answers and closes, and the
 * whole answer is returned. For large read-outs (`show servers state` of 100,000+ slots)
 * between timed runs; nothing is parsed or checked.
 */
export function rawCommand(address: string, line: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(parseSocketAddress(address));
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no complete answer to "${line}" within ${timeoutMs} ms`)));
    socket.on("connect", () => socket.write(`${line}\n`));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString("utf8"));
    });
  });
}
