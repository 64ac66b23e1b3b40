// `kube-haproxy run`: the sidecar, until SIGTERM or SIGINT. Before it starts, the HAProxy
// configuration it would take over is checked against its own flags: a sidecar started with
// another --socket would otherwise rewrite haproxy.cfg and move a live HAProxy's socket at its
// first reload.

import { readFile } from "node:fs/promises";
import { renderOptions } from "../compose.ts";
import { renderConfig } from "../haproxy/render.ts";
import { badOption } from "../options.ts";
import { startSidecar } from "../sidecar.ts";
import { apiServer, apiWait } from "./api-wait.ts";
import type { Setup } from "./setup.ts";
import { untilSignal } from "./signals.ts";

/** How often `run` repeats that it still waits for the API server's first lists. */
const WAIT_REPORT_MS = 60_000;

export async function run({ options, log, label }: Setup, env: NodeJS.ProcessEnv): Promise<void> {
  const server = apiServer(options.kubeconfig, env);
  if (!options.takeOver) {
    const existing = await readFile(options.config, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    const problem = existing === undefined ? undefined : takeOverProblem(existing, renderConfig([], renderOptions(options)));
    if (problem) {
      const flag = problem.flag === undefined ? "" : `fix ${label(problem.flag)}, or `;
      throw badOption(label("config"), `${options.config} ${problem.text}: ${flag}pass --take-over to rewrite it`);
    }
  }
  // Listening before anything starts: a SIGTERM during the start is a clean stop too.
  const stopSignal = untilSignal();
  const waiting = apiWait(log, { server, reportEveryMs: WAIT_REPORT_MS });
  const sidecar = startSidecar(options, { log: waiting.log, env });
  void sidecar.started.then(() => waiting.done());
  const signal = await stopSignal;
  log.info(`${signal}: stopping`);
  // A stop that waits on something stuck (a request to a dead API server) must not hang the exit.
  setTimeout(() => process.exit(0), 5_000).unref();
  await sidecar.stop();
}

export interface TakeOverProblem {
  readonly text: string;
  /** The flag that disagrees with the file, if one does. */
  readonly flag?: "socket" | "stats-bind-address";
}

/**
 * Pure: why a sidecar whose own empty configuration is `ours` must not rewrite `existing`
 * (the file HAProxy runs from), or undefined when it may. The runtime socket and the stats
 * address are what a reload would move under whoever uses them; everything else a reload
 * changes is the cluster's doing, the sidecar's job.
 */
export function takeOverProblem(existing: string, ours: string): TakeOverProblem | undefined {
  if (!existing.startsWith("# Rendered by kube-haproxy")) return { text: "was not written by kube-haproxy" };
  const socket = (text: string): string | undefined => /^\s*stats socket (\S+)/m.exec(text)?.[1];
  const stats = (text: string): string => /^frontend stats\n\s*bind (\S+)/m.exec(text)?.[1] ?? "none";
  if (socket(existing) !== socket(ours)) {
    return { text: `was rendered for the runtime socket ${socket(existing)}, not ${socket(ours)}: a reload would move HAProxy's socket`, flag: "socket" };
  }
  if (stats(existing) !== stats(ours)) {
    return { text: `serves HAProxy's stats page on ${stats(existing)}, not ${stats(ours)}: a reload would move it`, flag: "stats-bind-address" };
  }
  return undefined;
}
