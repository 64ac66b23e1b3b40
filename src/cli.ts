#!/usr/bin/env node
// The command line: `kube-haproxy [run]`, `render`, `status`, `demo`. Flags are defined once in
// options.ts; this file only maps them to citty, builds the logger, and handles signals.

import { defineCommand, runMain, type ArgsDef } from "citty";
import { KubeHaproxyError, isKubeHaproxyError } from "./errors.ts";
import { createLogger } from "./log.ts";
import { FLAGS, envName, redacted, resolveOptions, type Options, type RawFlags } from "./options.ts";
import { renderFromCluster } from "./bootstrap.ts";
import { startSidecar } from "./sidecar.ts";
import { formatTable, readStatus } from "./status.ts";

const flagArgs: ArgsDef = Object.fromEntries(
  Object.entries(FLAGS).map(([name, flag]) => [
    name,
    {
      type: "string",
      description: `${flag.description} [env ${envName(name)}]${"default" in flag ? ` (default: ${flag.default || '""'})` : ""}`,
      ...("alias" in flag ? { alias: flag.alias } : {}),
    },
  ]),
);

function optionsFrom(args: Record<string, unknown>): Options {
  const raw: RawFlags = {};
  for (const name of Object.keys(FLAGS) as (keyof typeof FLAGS)[]) {
    const value = args[name];
    if (typeof value === "string") raw[name] = value;
  }
  return resolveOptions(raw, process.env);
}

/** Runs a command body; a known error becomes one clear line and a non-zero exit. */
async function guarded(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    const message = isKubeHaproxyError(error) ? error.message : (error as Error).stack ?? String(error);
    process.stderr.write(`kube-haproxy: ${message}\n`);
    process.exit(isKubeHaproxyError(error, "E_BAD_OPTION") ? 2 : 1);
  }
}

/** Options and logger for `run` and `render`; refuses the modes that are not built yet. */
function setup(args: Record<string, unknown>): { options: Options; log: ReturnType<typeof createLogger> } {
  const options = optionsFrom(args);
  if (options.proxyMode !== "onlyfetch") {
    throw new KubeHaproxyError("E_BAD_OPTION", `--proxy-mode: ${options.proxyMode} is not available yet; use onlyfetch`);
  }
  const log = createLogger({ level: options.logLevel, format: options.logFormat });
  log.debug("options", redacted(options));
  return { options, log };
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve(signal));
  });
}

const run = defineCommand({
  meta: { name: "run", description: "Run the sidecar: follow the cluster and keep HAProxy in sync at runtime (default)" },
  args: flagArgs,
  run: ({ args }) =>
    guarded(async () => {
      const { options, log } = setup(args);
      const sidecar = startSidecar(options, { log, env: process.env });
      const signal = await untilSignal();
      log.info(`${signal}: stopping`);
      // A client-node watch that was reconnecting can outlive stop(): never hang on it.
      setTimeout(() => process.exit(0), 5_000).unref();
      await sidecar.stop();
    }),
});

const render = defineCommand({
  meta: { name: "render", description: "Write the bootstrap haproxy.cfg for the cluster's current state to --config, then exit" },
  args: flagArgs,
  run: ({ args }) =>
    guarded(async () => {
      const { options, log } = setup(args);
      await renderFromCluster(options, log, process.env);
    }),
});

const status = defineCommand({
  meta: { name: "status", description: "Print HAProxy's slots per Service port from the runtime socket; exit 1 if unreachable" },
  args: {
    socket: flagArgs.socket!,
    json: { type: "boolean", description: "JSON for scripts" },
  },
  run: ({ args }) =>
    guarded(async () => {
      const options = resolveOptions({ socket: typeof args.socket === "string" ? args.socket : undefined }, process.env);
      const rows = await readStatus(options.socket);
      process.stdout.write(args.json ? `${JSON.stringify(rows, null, 2)}\n` : formatTable(rows));
    }),
});

const demo = defineCommand({
  meta: { name: "demo", description: "A simulated cluster, a real HAProxy and the real sync path, shown live; Ctrl-C stops it" },
  args: {},
  run: () =>
    guarded(async () => {
      const abort = new AbortController();
      void untilSignal().then(() => abort.abort());
      // Loaded only here: the demo brings the simulated cluster, which the image leaves out.
      const { runDemo } = await import("./demo.ts");
      const summary = await runDemo({ stdout: process.stdout, signal: abort.signal });
      process.stdout.write(`\n${summary.changes} changes applied (p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms), ${summary.reloads} reloads, ${summary.requests} requests, ${summary.failedRequests} failed\n`);
    }),
});

export const main = defineCommand({
  meta: { name: "kube-haproxy", version: "0.1.0", description: "A kube-proxy replacement with HAProxy as the data plane, never reloaded for endpoint changes" },
  subCommands: { run, render, status, demo },
  default: "run",
});

await runMain(main);
