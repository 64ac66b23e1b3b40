// The runtime API's wire format in prompt mode, and what counts as success for each command.
//
// After `prompt`, HAProxy ends every reply with "\n> ". A body is either empty (the reply is
// just "\n> ") or ends with its own newline(s), which we strip: 2.6/2.8 omit the trailing
// newline on some bodies, 3.x always add exactly one (DESIGN.md, "versions").

import { KubeHaproxyError } from "../errors.ts";
import type { RuntimeCommand } from "./commands.ts";

const PROMPT = "\n> ";

/**
 * Splits the byte stream into reply bodies. Feed it chunks; it returns complete bodies.
 * A large reply (`show servers state` of 100,000 servers is ~12 MB in ~700 chunks) is kept as a
 * list of chunks and joined once when its prompt arrives: appending to one string and searching
 * it again on every chunk would cost the square of its size.
 */
export class ReplyDecoder {
  // Text received that is not yet part of a complete reply, in pieces.
  #chunks: string[] = [];
  #buffered = 0;
  // The last PROMPT.length - 1 characters of that text: a prompt may straddle two chunks.
  #tail = "";

  push(chunk: string): string[] {
    if (!(this.#tail + chunk).includes(PROMPT)) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      this.#tail = (this.#tail + chunk).slice(-(PROMPT.length - 1));
      return [];
    }
    this.#chunks.push(chunk);
    const text = this.#chunks.join("");
    const bodies: string[] = [];
    let start = 0;
    for (let at = text.indexOf(PROMPT); at !== -1; at = text.indexOf(PROMPT, start)) {
      bodies.push(stripNewlines(text.slice(start, at)));
      start = at + PROMPT.length;
    }
    const rest = text.slice(start);
    this.#chunks = rest === "" ? [] : [rest];
    this.#buffered = rest.length;
    this.#tail = rest.slice(-(PROMPT.length - 1));
    return bodies;
  }

  /** Characters received that do not form a complete reply yet. */
  get buffered(): number {
    return this.#buffered;
  }

  reset(): void {
    this.#chunks = [];
    this.#buffered = 0;
    this.#tail = "";
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
