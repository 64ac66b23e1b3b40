// `kube-haproxy run` as an operator starts it: it says once what it waits for, stops cleanly on
// SIGTERM with one log line per event, and refuses to take over an HAProxy configuration made
// for other sockets. Real CLI processes, the fake API server, a real HAProxy.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { takeOverProblem } from "../src/commands/run.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { startHaproxy } from "../src/sim/haproxy.ts";
import { writeKubeconfig } from "../src/sim/kubeconfig.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort, startPods } from "../src/sim/pods.ts";
import { CLI, runCli, tempDir, waitFor } from "./helpers.ts";

/** A text log line: time, level, message; nothing else, no blank lines. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) \S/;

interface Sidecar {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

function startRun(t: { after(fn: () => Promise<void>): void }, args: string[]): Sidecar {
  const child = spawn(process.execPath, [CLI, "run", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = once(child, "exit") as Promise<[number | null]>;
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  return {
    child,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

test("run against an unreachable API server says once what it waits for, not every retry; SIGTERM stops it", async (t) => {
  const dir = await tempDir(t);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  const kubeconfig = join(dir, "kubeconfig");
  await writeKubeconfig(kubeconfig, { server: `http://127.0.0.1:${port}` });
  const run = startRun(t, [
    "--kubeconfig", kubeconfig, "--config", join(dir, "haproxy.cfg"), "--socket", join(dir, "runtime.sock"),
    "--master-socket", join(dir, "master.sock"), "--metrics-bind-address=", "--healthz-bind-address=", "--log-level", "debug",
  ]);
  // Debug shows the retries the other levels do not: wait for several (after 0.5, 1, 2 s, …).
  const retries = (): string[] => run.output().split("\n").filter((line) => / DEBUG .*watch failed/.test(line));
  await waitFor(() => retries().length >= 4, 20_000, "four failed attempts");
  assert.equal(await run.stop(), 0, run.output());
  const lines = run.output().trimEnd().split("\n");
  const above = lines.filter((line) => !/ DEBUG /.test(line));
  assert.equal(above.filter((line) => line.includes("waiting for the API server")).length, 1, run.output());
  assert.match(run.output(), new RegExp(`WARN  waiting for the API server at http://127\\.0\\.0\\.1:${port} to list Services and EndpointSlices: .*ECONNREFUSED.*; retrying; reporting again every 60 s`));
  assert.deepEqual(above.filter((line) => /watch failed|restarted the/.test(line)), [], "retries are not logged one by one above debug");
  for (const line of lines) assert.match(line, LOG_LINE);
});

test("a clean SIGTERM stop logs no warning, one line per event", async (t) => {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  const pods = await startPods(2, { base: 61 });
  t.after(() => Promise.all(pods.map((pod) => pod.stop())));
  cluster.api.upsert("services", makeService("default", "web", [{ port: await freePort() }]));
  cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", pods.map((pod) => ({ ip: pod.ip })), [{ port: pods[0]!.port }]));
  const common = ["--kubeconfig", cluster.kubeconfig, "--config", join(dir, "haproxy.cfg"), "--socket", join(dir, "runtime.sock"), "--bind-address", "127.0.0.1", "--stats-bind-address=", "--metrics-bind-address=", "--healthz-bind-address="];
  const rendered = await runCli(["render", ...common]);
  assert.equal(rendered.code, 0, rendered.stderr);
  const haproxy = await startHaproxy({ dir, configPath: join(dir, "haproxy.cfg") });
  t.after(() => haproxy.stop());
  const run = startRun(t, [...common, "--master-socket", haproxy.masterSocket]);
  await waitFor(() => run.output().includes("initial lists received") && run.output().includes("connected to HAProxy's runtime API"), 15_000, "the sidecar up");
  assert.equal(await run.stop(), 0, run.output());
  const lines = run.output().trimEnd().split("\n");
  assert.deepEqual(lines.filter((line) => /WARN|ERROR/.test(line)), [], "no warning on a clean stop");
  for (const line of lines) assert.match(line, LOG_LINE);
  assert.ok(lines.some((line) => line.includes("SIGTERM: stopping")));
});

test("run refuses to take over a configuration made for another runtime socket, unless --take-over", async (t) => {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir, { tls: false });
  t.after(() => cluster.stop());
  const config = join(dir, "haproxy.cfg");
  const common = ["--kubeconfig", cluster.kubeconfig, "--config", config, "--stats-bind-address=", "--metrics-bind-address=", "--healthz-bind-address="];
  const rendered = await runCli(["render", ...common, "--socket", join(dir, "a.sock")]);
  assert.equal(rendered.code, 0, rendered.stderr);
  const before = await readFile(config, "utf8");

  const other = ["--socket", join(dir, "b.sock"), "--master-socket", join(dir, "master.sock")];
  const refused = await runCli(["run", ...common, ...other]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(
    refused.stderr,
    `kube-haproxy: --config: ${config} was rendered for the runtime socket ${join(dir, "a.sock")}, not ${join(dir, "b.sock")}: ` +
      "a reload would move HAProxy's socket: fix --socket, or pass --take-over to rewrite it\n",
  );
  const fromEnv = await runCli(["run", ...common, "--master-socket", join(dir, "master.sock")], { env: { ...process.env, KUBE_HAPROXY_SOCKET: join(dir, "b.sock") } });
  assert.equal(fromEnv.code, 2);
  assert.match(fromEnv.stderr, /fix KUBE_HAPROXY_SOCKET, or pass --take-over/);
  const stats = await runCli(["run", ...common, "--socket", join(dir, "a.sock"), "--master-socket", join(dir, "master.sock"), "--stats-bind-address", "127.0.0.1:18404"]);
  assert.equal(stats.code, 2);
  assert.match(stats.stderr, /serves HAProxy's stats page on none, not 127\.0\.0\.1:18404: a reload would move it: fix --stats-bind-address/);
  assert.equal(await readFile(config, "utf8"), before, "the file is untouched");

  // Told to, it starts (and would rewrite the file at its first reload).
  const run = startRun(t, [...common, ...other, "--take-over"]);
  await waitFor(() => run.output().includes(`waiting for HAProxy's runtime API at ${join(dir, "b.sock")}`), 15_000, "run to start");
  assert.equal(await run.stop(), 0, run.output());

  await writeFile(config, "global\n  stats socket /tmp/x.sock\n");
  const foreign = await runCli(["run", ...common, ...other]);
  assert.equal(foreign.code, 2);
  assert.equal(foreign.stderr, `kube-haproxy: --config: ${config} was not written by kube-haproxy: pass --take-over to rewrite it\n`);
});

test("takeOverProblem (pure): the same socket and stats address may be taken over", () => {
  const cfg = (socket: string, stats?: string): string =>
    `# Rendered by kube-haproxy. Endpoint changes are applied at runtime; do not edit.\nglobal\n  stats socket ${socket} mode 660 level admin\n\n` +
    (stats ? `frontend stats\n  bind ${stats}\n  mode http\n` : "");
  assert.equal(takeOverProblem(cfg("/a.sock", "127.0.0.1:8404"), cfg("/a.sock", "127.0.0.1:8404")), undefined);
  assert.equal(takeOverProblem(cfg("/a.sock"), cfg("/b.sock"))?.flag, "socket");
  assert.equal(takeOverProblem(cfg("ipv4@127.0.0.1:9999"), cfg("ipv4@127.0.0.1:9998"))?.flag, "socket");
  assert.equal(takeOverProblem(cfg("/a.sock", "127.0.0.1:8404"), cfg("/a.sock", "127.0.0.1:8405"))?.flag, "stats-bind-address");
  assert.equal(takeOverProblem(cfg("/a.sock"), cfg("/a.sock", "127.0.0.1:8405"))?.flag, "stats-bind-address");
  assert.deepEqual(takeOverProblem("global\n  stats socket /a.sock\n", cfg("/a.sock")), { text: "was not written by kube-haproxy" });
});
