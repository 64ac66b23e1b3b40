// What an operator sees: Prometheus metrics, /healthz and /livez, `kube-haproxy status`, JSON logs.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { createLogger, silentLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { startSidecar } from "../src/sidecar.ts";
import { startHaproxy } from "../src/sim/haproxy.ts";
import { makeSlice } from "../src/sim/objects.ts";
import { summarize, formatTable } from "../src/status.ts";
import { parseServersState } from "../src/haproxy/servers-state.ts";
import { freePort } from "../src/sim/pods.ts";
import { waitFor } from "./helpers.ts";
import { world } from "./world.ts";

const CLI = join(import.meta.dirname, "..", "src", "cli.ts");

async function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

test("metrics and health of a running sidecar", async (t) => {
  const w = await world(t, "tcp", { "metrics-bind-address": "127.0.0.1:0", "healthz-bind-address": "127.0.0.1:0" });
  const server = (await w.sidecar.statusServer)!;
  await w.sidecar.dataplane.whenSynced();
  // One endpoint change carrying a trigger time, as the EndpointSlice controller sets it.
  w.cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", w.pods.slice(0, 2).map((p) => ({ ip: p.ip })), [{ port: w.pods[0]!.port }]));
  await waitFor(() => w.sidecar.metrics.networkProgrammingDuration.get().count > 0, 5_000, "a programming latency sample");

  const metrics = await fetchText(server.metricsUrl!);
  assert.equal(metrics.status, 200);
  assert.match(metrics.type, /text\/plain; version=0\.0\.4/);
  for (const name of [
    "kube_haproxy_network_programming_duration_seconds_bucket",
    "kube_haproxy_sync_duration_seconds_count",
    'kube_haproxy_runtime_commands_total{result="ok"}',
    "kube_haproxy_services 1",
    'kube_haproxy_endpoints{state="ready"} 2',
    "kube_haproxy_last_sync_timestamp_seconds",
  ]) {
    assert.ok(metrics.body.includes(name), `metrics have ${name}`);
  }
  assert.match(metrics.body, /kube_haproxy_slots\{backend="default:web:\d+",state="used"\} [23]/);

  const healthy = await fetchText(server.healthUrl);
  assert.equal(healthy.status, 200);
  const body = JSON.parse(healthy.body) as { lastUpdated: string; currentTime: string };
  assert.ok(Date.parse(body.lastUpdated) > 0 && Date.parse(body.currentTime) > 0);
  assert.equal((await fetchText(server.healthUrl.replace("/healthz", "/livez"))).status, 200);

  // HAProxy gone: the runtime socket is down, health says so.
  await w.haproxy.kill();
  const down = await waitFor(async () => {
    const reply = await fetchText(server.healthUrl);
    return reply.status === 503 ? reply : undefined;
  }, 5_000, "503 once HAProxy is gone");
  assert.match(JSON.parse(down.body).reason, /not connected/);
  // …but the sidecar itself is alive: restarting it would not bring HAProxy back.
  assert.equal((await fetchText(server.healthUrl.replace("/healthz", "/livez"))).status, 200);
  assert.equal(w.sidecar.metrics.runtimeReconnects.get(), 0, "not reconnected while HAProxy is gone");
  // HAProxy back (a container restart): one reconnect, healthy again.
  const again = await startHaproxy({ dir: w.dir, configPath: w.haproxy.configPath });
  t.after(() => again.stop());
  await waitFor(async () => (await fetchText(server.healthUrl)).status === 200, 5_000, "healthy once HAProxy is back");
  assert.equal(w.sidecar.metrics.runtimeReconnects.get(), 1);
});

test("programming latency: no sample after a restart without changes, one per change, none from full syncs (issue 9, bug 3)", async (t) => {
  const w = await world(t, "tcp");
  await w.sidecar.stop();
  const metrics = createMetrics();
  const sidecar = startSidecar(w.options, { log: silentLogger, env: {}, metrics });
  t.after(() => sidecar.stop());
  await sidecar.started;
  await sidecar.dataplane.whenSynced();
  const samples = (): number => metrics.networkProgrammingDuration.get().count;
  sidecar.dataplane.requestFullSync();
  await sidecar.dataplane.whenSynced();
  assert.equal(samples(), 0, "nothing changed since the restart: no sample, however old the trigger times");
  w.setEndpoints(w.pods.slice(0, 2).map((p) => ({ ip: p.ip })));
  await waitFor(() => samples() > 0, 5_000, "the change's sample");
  await sidecar.dataplane.whenSynced();
  sidecar.dataplane.requestFullSync();
  await sidecar.dataplane.whenSynced();
  assert.equal(samples(), 1, "one change, one sample");
  const { sum } = metrics.networkProgrammingDuration.get();
  assert.ok(sum < 5, `a latency of this change, not of the Service's age (${sum} s)`);
});

test("kube-haproxy status prints slots per Service port, --json with the table's names, and says at once why HAProxy is unreachable", async (t) => {
  const w = await world(t, "tcp");
  await w.sidecar.dataplane.whenSynced();
  const run = async (args: string[]): Promise<{ code: number; out: string }> => {
    const child = spawn(process.execPath, [CLI, "status", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    const [code] = await once(child, "exit");
    return { code: code as number, out };
  };
  const table = await run(["--socket", w.options.socket]);
  assert.equal(table.code, 0, table.out);
  assert.match(table.out, /^SERVICE PORT\s+SLOTS\s+DYNAMIC\s+USED\s+FREE\s+READY\s+DRAIN\s+DOWN\n/);
  assert.match(table.out, /default:web:\d+\s+4\s+0\s+3\s+1\s+3\s+0\s+0\n/);
  const json = await run(["--socket", w.options.socket, "--json"]);
  const row = { servicePort: `default:web:${new URL(w.url).port}`, slots: 4, dynamic: 0, used: 3, free: 1, ready: 3, drain: 0, down: 0 };
  assert.deepEqual(JSON.parse(json.out)[0], row);
  // Every JSON key is a column, in the same order: SERVICE PORT ↔ servicePort.
  const headers = table.out.split("\n")[0]!.split(/\s{2,}/);
  assert.deepEqual(headers.map((h) => h.toLowerCase().replaceAll(" ", "")), Object.keys(row).map((k) => k.toLowerCase()));

  const missing = join(w.options.socket, "..", "nothing.sock");
  const down = await run(["--socket", missing]);
  assert.equal(down.code, 1);
  assert.equal(down.out, `kube-haproxy: no such socket: ${missing}: is HAProxy running?\n`);
  const refused = await run(["--socket", `127.0.0.1:${await freePort()}`]);
  assert.equal(refused.code, 1);
  assert.match(refused.out, /^kube-haproxy: 127\.0\.0\.1:\d+ refuses connections: is HAProxy running\?\n$/);
  const master = await run(["--socket", w.haproxy.masterSocket]);
  assert.equal(master.code, 1);
  assert.match(master.out, /^kube-haproxy: \S+master\.sock is HAProxy's master socket; status reads the runtime API socket .*\n$/);
});

test("summarize and formatTable (pure)", () => {
  const records = parseServersState(
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
      "3 b 1 s1 10.0.0.1 0 4 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n3 b 2 s2 10.0.0.2 2 12 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n3 b 3 d3 10.0.0.3 2 4 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n3 b 4 other 10.0.0.3 2 0 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0" +
      // Stopped but draining, or in maintenance: not "down" (Kubernetes does not say ready).
      "\n3 b 5 s5 10.0.0.5 0 12 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n3 b 6 s6 0.0.0.0 0 5 1 1 0 1 0 0 8 0 0 0 - 0 - 0 0 - - 0",
  );
  const rows = summarize(records);
  assert.deepEqual(rows, [{ servicePort: "b", slots: 4, dynamic: 1, used: 4, free: 1, ready: 2, drain: 2, down: 1 }]);
  assert.equal(formatTable(rows), "SERVICE PORT  SLOTS  DYNAMIC  USED  FREE  READY  DRAIN  DOWN\nb             4      1        4     1     2      2      1\n");
});

test("--log-format json writes one JSON object per line", () => {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c) => (text += c));
  const log = createLogger({ format: "json", stream });
  log.warn("skipping default/dns port dns (udp): HAProxy has no UDP", { service: "default/dns", reason: "udp" });
  const line = JSON.parse(text.trim()) as Record<string, string>;
  assert.equal(line.level, "warn");
  assert.equal(line.reason, "udp");
  assert.match(line.msg!, /skipping default\/dns/);
});
