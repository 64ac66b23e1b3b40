// End to end: the real CLI (`render`, then a real HAProxy from that file, then `run`) against
// the simulated API server, with the real client-node informers and real traffic to loopback pods.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { showServersState } from "../src/haproxy/commands.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { startSimulatedCluster, type SimulatedCluster } from "../src/sim/cluster.ts";
import { haproxyBinary, startHaproxy, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { makeService, makeSlice, type PodEndpoint } from "../src/sim/objects.ts";
import { freePort, get, startPods, type Pod } from "../src/sim/pods.ts";
import { tempDir, waitFor } from "./helpers.ts";

const CLI = join(import.meta.dirname, "..", "src", "cli.ts");

interface Harness {
  dir: string;
  cluster: SimulatedCluster;
  haproxy: HaproxyProcess;
  sidecar: ChildProcess;
  logs: () => string;
  runtime: RuntimeClient;
}

function flags(dir: string, cluster: SimulatedCluster, command: "run" | "render"): string[] {
  return [
    `--kubeconfig=${cluster.kubeconfig}`,
    `--config=${join(dir, "haproxy.cfg")}`,
    `--socket=${join(dir, "runtime.sock")}`,
    ...(command === "run" ? [`--master-socket=${join(dir, "master.sock")}`, `--haproxy-binary=${haproxyBinary()}`] : []),
    "--bind-address=127.0.0.1",
    "--stats-bind-address=",
    "--metrics-bind-address=",
    "--healthz-bind-address=",
    "--slots=8",
    "--log-level=debug",
  ];
}

/** Runs the CLI asynchronously (the fake API server lives in this process and must not block). */
async function cli(args: string[]): Promise<{ code: number; output: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const [code] = await once(child, "exit");
  return { code: code as number, output };
}

async function start(t: Parameters<typeof tempDir>[0], seed: (cluster: SimulatedCluster) => void): Promise<Harness> {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  seed(cluster);
  const rendered = await cli(["render", ...flags(dir, cluster, "render")]);
  assert.equal(rendered.code, 0, rendered.output);
  const haproxy = await startHaproxy({ dir, configPath: join(dir, "haproxy.cfg") });
  t.after(() => haproxy.stop());
  const sidecar = spawn(process.execPath, [CLI, "run", ...flags(dir, cluster, "run")], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  sidecar.stdout!.on("data", (chunk) => (output += chunk));
  sidecar.stderr!.on("data", (chunk) => (output += chunk));
  t.after(async () => {
    if (sidecar.exitCode === null) {
      sidecar.kill("SIGTERM");
      await once(sidecar, "exit");
    }
  });
  const runtime = new RuntimeClient({ address: haproxy.runtimeSocket });
  t.after(() => runtime.close());
  await runtime.waitConnected();
  await waitFor(() => output.includes("initial lists received"), 10_000, "the sidecar to list the cluster");
  return { dir, cluster, haproxy, sidecar, logs: () => output, runtime };
}

/**
 * Which pods answer on `url`: at least `3 × expected + 6` requests, and more (up to 200) until
 * `expected` pods answered — HAProxy's roundrobin is fair over time, not right after a change.
 */
async function servedBy(url: string, expected: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < 200 && (i < expected * 3 + 6 || seen.size < expected); i++) seen.add(await get(url));
  return [...seen].sort();
}

async function expectServed(url: string, pods: readonly Pod[], what: string): Promise<void> {
  const want = pods.map((p) => p.ip).sort().join();
  let last = "";
  await waitFor(async () => (last = (await servedBy(url, pods.length)).join()) === want, 5_000, `${what} (last seen: ${last})`).catch(() => {
    assert.equal(last, want, what);
  });
}

const endpoints = (pods: readonly Pod[], patch: Partial<PodEndpoint> = {}): PodEndpoint[] => pods.map((pod) => ({ ip: pod.ip, ...patch }));

async function slotStates(runtime: RuntimeClient, backend: string): Promise<Map<string, string>> {
  const records = parseServersState(await runtime.execute(showServersState(backend)));
  return new Map(records.filter((r) => r.port !== 0 && stateOf(r) !== "maint").map((r) => [r.address, stateOf(r)]));
}

test("a Service follows its pods: 3, then 6 without a reload, drained, deleted; UDP skipped; several slices", async (t) => {
  const pods = await startPods(6, { base: 31 });
  t.after(() => Promise.all(pods.map((pod) => pod.stop())));
  const servicePort = await freePort();
  const url = `http://127.0.0.1:${servicePort}/`;
  // Service port named "http" → targetPort by name: the slice says which port the pods use.
  const slicePorts = [{ name: "http", port: pods[0]!.port }];
  const h = await start(t, (cluster) => {
    cluster.api.upsert("services", makeService("default", "web", [{ name: "http", port: servicePort, targetPort: "http" as never }, { name: "dns", port: 53, protocol: "UDP" }]));
    cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-a", endpoints(pods.slice(0, 3)), [...slicePorts, { name: "dns", port: 53, protocol: "UDP" }]));
  });
  const config = await readFile(join(h.dir, "haproxy.cfg"), "utf8");
  assert.match(config, /^listen default:web:http$/m);
  assert.doesNotMatch(config, /default:web:dns/, "the UDP port is not half-configured");
  await expectServed(url, pods.slice(0, 3), "the three rendered pods");
  await waitFor(() => /udp/i.test(h.logs()) && h.logs().includes("default/web"), 5_000, "a log line for the skipped UDP port");

  // Scale to 6, the new pods in a second slice: no reload.
  h.cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-b", endpoints(pods.slice(3)), slicePorts));
  await expectServed(url, pods, "all six pods");
  assert.equal(await reloadCount(h.haproxy.masterSocket), 0, "no reload for endpoint changes");

  // Pod 3 terminating but still serving: drained, not cut.
  h.cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-a", [...endpoints(pods.slice(0, 2)), { ip: pods[2]!.ip, ready: false, serving: true, terminating: true }], slicePorts));
  await waitFor(async () => (await slotStates(h.runtime, "default:web:http")).get(pods[2]!.ip) === "drain", 5_000, "pod 3 drained");
  await expectServed(url, [...pods.slice(0, 2), ...pods.slice(3)], "all but the draining pod");

  // Pod 3 deleted.
  h.cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-a", endpoints(pods.slice(0, 2)), slicePorts));
  await waitFor(async () => !(await slotStates(h.runtime, "default:web:http")).has(pods[2]!.ip), 5_000, "pod 3 gone");
  await expectServed(url, [...pods.slice(0, 2), ...pods.slice(3)], "pod 3 gets nothing");
  assert.equal(await reloadCount(h.haproxy.masterSocket), 0);
});

test("ClientIP session affinity keeps one client on one pod", async (t) => {
  const pods = await startPods(3, { base: 32 });
  t.after(() => Promise.all(pods.map((pod) => pod.stop())));
  const servicePort = await freePort();
  const url = `http://127.0.0.1:${servicePort}/`;
  const h = await start(t, (cluster) => {
    cluster.api.upsert(
      "services",
      makeService("shop", "cart", [{ port: servicePort }], (s) => {
        s.spec!.sessionAffinity = "ClientIP";
        s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 600 } };
      }),
    );
    cluster.api.upsert("endpointslices", makeSlice("shop", "cart", "cart-1", endpoints(pods), [{ port: pods[0]!.port }]));
  });
  assert.match(await readFile(join(h.dir, "haproxy.cfg"), "utf8"), /stick-table type ipv6 size 1m expire 600s/);
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) seen.add(await get(url));
  assert.equal(seen.size, 1, `one client, one pod (saw ${[...seen].join(", ")})`);
});

test("watch dropped and 410 Gone mid-run: HAProxy still converges to the API's state", async (t) => {
  const pods = await startPods(5, { base: 33 });
  t.after(() => Promise.all(pods.map((pod) => pod.stop())));
  const servicePort = await freePort();
  const url = `http://127.0.0.1:${servicePort}/`;
  const ports = [{ port: pods[0]!.port }];
  const h = await start(t, (cluster) => {
    cluster.api.upsert("services", makeService("default", "api", [{ port: servicePort }]));
    cluster.api.upsert("endpointslices", makeSlice("default", "api", "api-1", endpoints(pods.slice(0, 2)), ports));
  });
  await expectServed(url, pods.slice(0, 2), "initial pods");

  h.cluster.api.dropWatches();
  h.cluster.api.upsert("endpointslices", makeSlice("default", "api", "api-1", endpoints(pods.slice(0, 3)), ports));
  await expectServed(url, pods.slice(0, 3), "the change made while the watch was down");

  // Everything expires: the informers must re-list; a slice deleted meanwhile must disappear.
  h.cluster.api.upsert("endpointslices", makeSlice("default", "api", "api-2", endpoints(pods.slice(3)), ports));
  await expectServed(url, pods, "all five");
  h.cluster.api.expireAll();
  h.cluster.api.remove("endpointslices", "default", "api-1");
  await expectServed(url, pods.slice(3), "only the second slice's pods after 410 Gone");
  assert.equal(await reloadCount(h.haproxy.masterSocket), 0);
});

test("bad flags exit non-zero with one line naming the flag", async () => {
  for (const [args, flag] of [
    [["run", "--proxy-mode=ipvs"], "--proxy-mode"],
    [["run", "--min-sync-period=soon"], "--min-sync-period"],
    [["run", "--slots=0"], "--slots"],
    [["run", "--algorithm=fastest"], "--algorithm"],
    [["render", "--kube-api-content-type=application/vnd.kubernetes.protobuf"], "--kube-api-content-type"],
  ] as const) {
    const { code, output } = await cli([...args]);
    assert.notEqual(code, 0);
    assert.equal(output.trim().split("\n").length, 1, output);
    assert.ok(output.includes(flag), output);
  }
  const refused = await cli(["run", "--proxy-mode=mesh"]);
  assert.equal(refused.code, 2);
  assert.match(refused.output.trim(), /^kube-haproxy: --service-cidr: mesh mode needs the cluster's Service CIDR \(e\.g\. --service-cidr 10\.96\.0\.0\/12\)$/);
});

test("--passwd is never printed", async (t) => {
  const dir = await tempDir(t);
  const { output } = await cli(["render", "--kubeconfig", join(dir, "missing"), "--user", "admin", "--passwd", "hunter2", "--log-level", "debug"]);
  assert.ok(!output.includes("hunter2"), output);
});
