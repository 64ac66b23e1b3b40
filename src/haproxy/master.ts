// HAProxy's master CLI (`haproxy -W -S <path>`): process list and reloads. Only structural
// changes ever reload; endpoint churn goes through the runtime API.

import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeHaproxyError } from "../errors.ts";

/**
 * Sends one command to the master CLI and returns its whole answer. The master answers and
 * closes only after the client half-closes its side, hence `end(command)`. While the master
 * re-executes (a reload) or starts, its socket refuses or resets connections for a moment: a
 * refused connection delivered nothing, so it is retried until `timeoutMs`; a reset one may have
 * delivered the command, so only `show …` commands (which change nothing) are retried then.
 */
export async function masterCommand(path: string, command: string, timeoutMs = 5_000): Promise<string> {
  if (/[\n\r;]/.test(command)) throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `bad master command: ${JSON.stringify(command)}`);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await masterOnce(path, command, timeoutMs);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const retry = code === "ECONNREFUSED" || code === "ENOENT" || code === "EAGAIN" || (code === "ECONNRESET" && command.startsWith("show "));
      if (!retry || performance.now() > deadline) throw error;
      await sleep(25);
    }
  }
}

function masterOnce(path: string, command: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    let out = "";
    socket.setEncoding("utf8");
    socket.setTimeout(timeoutMs, () => socket.destroy(new KubeHaproxyError("E_COMMAND_TIMEOUT", `master CLI gave no answer to "${command}" in ${timeoutMs} ms`, { command })));
    socket.on("connect", () => socket.end(`${command}\n`));
    socket.on("data", (chunk: string) => (out += chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(out));
  });
}

export interface ProcessInfo {
  readonly pid: number;
  readonly role: "master" | "worker";
  /** The master's reload counter; for workers, how many reloads ago they started. */
  readonly reloads: number;
  /** The master's count of workers that failed to start (`[failed: N]`); 0 for workers. */
  readonly failed: number;
}

/** Parses `show proc`: "<PID> <type> <reloads> [failed: N] <uptime> <version>" lines per process. */
export function parseShowProc(text: string): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const line of text.split("\n")) {
    const match = /^(\d+)\s+(master|worker)\s+\[?(\d+)(?:\s*\[failed:\s*(\d+)\])?/.exec(line.trim());
    if (match) out.push({ pid: Number(match[1]), role: match[2] as "master" | "worker", reloads: Number(match[3]), failed: Number(match[4] ?? 0) });
  }
  return out;
}

/** The master's reload count: how many times HAProxy has reloaded since it started. */
export async function reloadCount(masterSocket: string): Promise<number> {
  const master = parseShowProc(await masterCommand(masterSocket, "show proc")).find((p) => p.role === "master");
  if (!master) throw new KubeHaproxyError("E_RELOAD_FAILED", "master CLI `show proc` lists no master");
  return master.reloads;
}
