// `kube-haproxy demo`: until Ctrl-C, SIGTERM, or its parent going away (`npm run demo` killed:
// npm dies, and node with its HAProxy would be left running), then everything it started is
// stopped and its temporary folder removed before it prints the summary.

import { renderSummary, runDemo } from "../demo.ts";
import type { CommandInput } from "./setup.ts";
import { untilOrphaned, untilSignal } from "./signals.ts";

export async function demo(_input: CommandInput): Promise<void> {
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  void untilSignal().then(stop);
  void untilOrphaned().then(stop);
  // A closed terminal or pipe: stop (and clean up) rather than die on EPIPE.
  process.stdout.on("error", stop);
  const summary = await runDemo({ stdout: process.stdout, signal: abort.signal });
  if (process.stdout.writable) process.stdout.write(`\n${renderSummary(summary)}\n`);
}
