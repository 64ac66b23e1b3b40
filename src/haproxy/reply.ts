// The runtime API's wire format in prompt mode, and what counts as success for each command.
//
// After `prompt`, HAProxy ends every reply with "\n> ". A body is either empty (the reply is
// just "\n> ") or ends with its own newline(s), which we strip: 2.6/2.8 omit the trailing
// newline on some bodies, 3.x always add exactly one (DESIGN.md, "versions").

import { KubeHaproxyError } from "../errors.ts";
import type { RuntimeCommand } from "./commands.ts";

/** What ends every reply in prompt mode. */
export const PROMPT = "\n> ";

/**
 * The most text a reply may hold before it is complete: `show servers state` of 100,000
 * servers is 12 MB with short backend names and about 25 MB with 100-character ones; 64 MiB
 * leaves room for twice that. A peer that sends more without ending its reply is not
 * HAProxy's runtime API (or not in prompt mode), and holding on would only grow the heap.
 */
export const MAX_REPLY_CHARS = 64 * 2 ** 20;

/**
 * Text received in pieces, joined once when complete: appending to one string and searching it
 * again on every chunk would cost the square of its size (a 12 MB reply comes in ~700 chunks).
 */
class Pieces {
  readonly #maxChars: number;
  #chunks: string[] = [];
  #length = 0;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
  }

  get length(): number {
    return this.#length;
  }

  push(chunk: string): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length > this.#maxChars) {
      throw new KubeHaproxyError("E_REPLY_TOO_LARGE", `a reply passed ${this.#maxChars} characters without ending: not HAProxy's runtime API in prompt mode, or a reply larger than the limit`);
    }
  }

  /** All the text, and the pieces start again with `rest`. */
  take(rest = ""): string {
    const text = this.#chunks.join("");
    this.clear();
    if (rest !== "") this.push(rest);
    return text;
  }

  clear(): void {
    this.#chunks = [];
    this.#length = 0;
  }
}

/**
 * Splits a prompt-mode byte stream into reply bodies. Feed it chunks; it returns complete
 * bodies, and throws E_REPLY_TOO_LARGE once more than `maxChars` wait without a prompt.
 *
 * Prompt framing is exact only for bodies that cannot contain PROMPT: HAProxy escapes nothing,
 * so an environment value or a map entry holding "\n> " would read as two replies. The runtime
 * client therefore sends only bounded commands this way (their replies are lines HAProxy writes
 * itself, none starting with "> ") and reads open-ended ones on a connection of their own,
 * where the reply ends with the connection (runtime-client.ts).
 */
export class ReplyDecoder {
  readonly #pending: Pieces;
  // The last PROMPT.length - 1 characters received: a prompt may straddle two chunks.
  #tail = "";

  constructor(maxChars = MAX_REPLY_CHARS) {
    this.#pending = new Pieces(maxChars);
  }

  push(chunk: string): string[] {
    const seam = this.#tail + chunk;
    this.#tail = seam.slice(-(PROMPT.length - 1));
    if (!seam.includes(PROMPT)) {
      this.#pending.push(chunk);
      return [];
    }
    // Only the text after the last prompt stays pending; it is checked against the limit below.
    const text = this.#pending.length === 0 ? chunk : this.#pending.take() + chunk;
    const bodies: string[] = [];
    let start = 0;
    for (let at = text.indexOf(PROMPT); at !== -1; at = text.indexOf(PROMPT, start)) {
      bodies.push(stripNewlines(text.slice(start, at)));
      start = at + PROMPT.length;
    }
    if (start < text.length) this.#pending.push(text.slice(start));
    return bodies;
  }

  /** Characters received that do not form a complete reply yet. */
  get buffered(): number {
    return this.#pending.length;
  }

  reset(): void {
    this.#pending.clear();
    this.#tail = "";
  }
}

/**
 * The start of the stream after `prompt`: HAProxy's runtime API answers it with an empty
 * reply, i.e. PROMPT alone. Returns the text after that answer once it is complete, undefined
 * while it may still come; throws E_PROTOCOL when the peer said something else (the master
 * CLI answers "master> ", another service anything at all).
 */
export function afterPromptAnswer(received: string, address: string): string | undefined {
  if (received.startsWith(PROMPT)) return received.slice(PROMPT.length);
  if (PROMPT.startsWith(received)) return undefined;
  const said = JSON.stringify(received.slice(0, 60));
  const hint = received.startsWith("master>") ? ": this is HAProxy's master CLI; the runtime API is the configuration's `stats socket`" : "";
  throw new KubeHaproxyError("E_PROTOCOL", `${address} is not HAProxy's runtime API: it answered \`prompt\` with ${said}${hint}`);
}

/**
 * The reply to one command sent without `prompt`: HAProxy answers and closes the connection,
 * so the reply is everything received, whatever it contains. Bounded like ReplyDecoder.
 */
export class ClosedReply {
  readonly #pieces: Pieces;

  constructor(maxChars = MAX_REPLY_CHARS) {
    this.#pieces = new Pieces(maxChars);
  }

  push(chunk: string): void {
    this.#pieces.push(chunk);
  }

  /**
   * Whether anything came: HAProxy answers every command with at least a newline (an empty
   * body is "\n", measured on 2.6 and 3.4), so a connection closed with nothing sent is no answer.
   */
  get answered(): boolean {
    return this.#pieces.length > 0;
  }

  /** The body, trailing newlines stripped as for prompt-mode replies. */
  body(): string {
    return stripNewlines(this.#pieces.take());
  }
}

function stripNewlines(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  return end === text.length ? text : text.slice(0, end);
}

// `set server … addr` success texts across 2.6–3.2:
//   2.6/2.8: "IP changed from 'A' to 'B'[, port changed …] by 'stats socket command'", "no need to change the addr…"
//   3.x:     "IP changed from …", "port changed from …", "nothing changed"
const ADDR_CHANGED = /^(IP changed from '|port changed from '|no need to change the addr|nothing changed)/;

/** Returns an error when `body` is not a success reply for `command`, else undefined. */
export function checkReply(command: RuntimeCommand, body: string): KubeHaproxyError | undefined {
  let ok: boolean;
  switch (command.expect) {
    case "any":
      ok = !/^(Unknown command|Permission denied|Require )/.test(body);
      break;
    case "info":
      ok = /^Pid: \d+$/m.test(body);
      break;
    case "empty":
      ok = body === "";
      break;
    case "addr-changed":
      ok = ADDR_CHANGED.test(body);
      break;
    case "server-added":
      // Warnings may come first; the last line says whether it worked.
      ok = body.endsWith("New server registered.");
      break;
    case "server-deleted":
      ok = body === "Server deleted.";
      break;
  }
  if (ok) return undefined;
  const firstLine = body.split("\n", 1)[0] || "(empty reply)";
  return new KubeHaproxyError("E_COMMAND_REJECTED", `HAProxy refused "${command.line}": ${firstLine}`, {
    command: command.line,
    reply: body,
  });
}
