// Resident memory of a running HAProxy's master and worker, read from /proc.

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { masterCommand, parseShowProc } from "../../src/haproxy/master.ts";
import type { HaproxyProcess } from "../../src/sim/haproxy.ts";

/** VmRSS of a process in KB; 0 when unreadable. */
export function rssKb(pid: number | undefined): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The pid of the first worker (no reload yet), from the master CLI's `show proc`. */
export async function workerPid(haproxy: HaproxyProcess): Promise<number | undefined> {
  // The master CLI may still refuse connections just after the runtime socket opened.
  let procs = "";
  for (let attempt = 0; !procs && attempt < 250; attempt++) {
    procs = await masterCommand(haproxy.masterSocket, "show proc").catch(() => sleep(20).then(() => ""));
  }
  return parseShowProc(procs).find((p) => p.role === "worker" && p.reloads === 0)?.pid;
}

/** Resident memory of the master and the current worker, in MB (from /proc; 0 when unreadable). */
export async function haproxyRss(haproxy: HaproxyProcess): Promise<{ masterRssMb: number; workerRssMb: number }> {
  const worker = await workerPid(haproxy);
  return { masterRssMb: Math.round(rssKb(haproxy.pid) / 1024), workerRssMb: Math.round(rssKb(worker) / 1024) };
}
