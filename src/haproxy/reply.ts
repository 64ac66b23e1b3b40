// The runtime API's wire format in prompt mode, and what counts as success for each command.
//
// After `prompt`, HAProxy ends every reply with "\n> ". A body is either empty (the reply is
// just "\n> ") or ends with its own newline(s), which we strip: 2.6/2.8 omit the trailing
// newline on some bodies, 3.x always add exactly one (DESIGN.md, "versions").

import { KubeHaproxyError } from "../errors.ts";
import type { RuntimeCommand } from "./commands.ts";

const PROMPT = "\n> ";

/** Splits the byte stream into reply bodies. Feed it chunks; it returns complete bodies. */
export class ReplyDecoder {
  // Text received but not yet part of a complete reply. Invariant: contains no PROMPT before
  // #scanFrom - 2 (we never rescan text already searched).
  #pending = "";
  #scanFrom = 0;

  push(chunk: string): string[] {
    this.#pending += chunk;
    const bodies: string[] = [];
    let start = 0;
    let at = this.#pending.indexOf(PROMPT, Math.max(this.#scanFrom, 0));
    while (at !== -1) {
      bodies.push(stripNewlines(this.#pending.slice(start, at)));
      start = at + PROMPT.length;
      at = this.#pending.indexOf(PROMPT, start);
    }
    if (start > 0) this.#pending = this.#pending.slice(start);
    // The prompt may straddle two chunks: rescan the last two characters next time.
    this.#scanFrom = this.#pending.length - (PROMPT.length - 1);
    return bodies;
  }

  /** Bytes received that do not form a complete reply yet. */
  get buffered(): number {
    return this.#pending.length;
  }

  reset(): void {
    this.#pending = "";
    this.#scanFrom = 0;
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
