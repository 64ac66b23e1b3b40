// Active health checks: a pod whose host vanished (packets dropped, as when a node is lost)
// stops getting new connections within 2 s instead of the ~40 s the cluster takes to notice.
// Real HAProxy, the sidecar in process, the pod in a network namespace behind a veth pair.

import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { addServer, enableHealth, setServerState } from "../src/haproxy/commands.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { haproxyBinary, startHaproxy } from "../src/sim/haproxy.ts";
import { freePort, get, startPod } from "../src/sim/pods.ts";
import { readStatus } from "../src/status.ts";
import { showStat } from "../src/sim/failover.ts";
import { tempDir, waitFor } from "./helpers.ts";
import { netnsPodTestOptions, startNetnsPod } from "./netns-pod.ts";
import { world } from "./world.ts";

/**
 * Requests on new connections at a fixed rate, whatever the earlier ones are doing: a closed
 * loop would stall on the requests stuck connecting to the vanished host and send nothing else.
 */
function openLoop(url: string, everyMs: number): { stop(): Promise<{ sent: number; failedStarts: number[] }> } {
  const pending: Promise<void>[] = [];
  const failedStarts: number[] = [];
  const timer = setInterval(() => {
    const started = performance.now();
    pending.push(get(url, 8_000).then(() => {}, () => void failedStarts.push(started)));
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return { sent: pending.length, failedStarts };
    },
  };
}

interface Vanished {
  /** ms after the link went down: HAProxy said DOWN, and the last time the pod got a connection. */
  readonly downAfterMs: number | undefined;
  readonly lastConnectionAfterMs: number;
  readonly connectionsBefore: number;
  readonly failedAfter: number;
}

/** A world whose Service has a fourth pod in a namespace; the pod's host vanishes under load. */
async function vanishUnderLoad(t: Parameters<typeof world>[0], flags: Record<string, string>, watchMs: number): Promise<Vanished> {
  const w = await world(t, "tcp", flags);
  const pod = await startNetnsPod(t, w.pods[0]!.port);
  w.setEndpoints([...w.pods, pod].map((p) => ({ ip: p.ip })));
  const row = async (): Promise<Record<string, string>> => {
    const found = (await showStat(w.haproxy.runtimeSocket)).find((r) => r.pxname === w.backend && r.addr === `${pod.ip}:${pod.port}`);
    if (!found) throw new Error(`no server at ${pod.ip}:${pod.port} in ${w.backend}`);
    return found;
  };
  await waitFor(async () => (await get(w.url)) === pod.ip, 10_000, "the namespaced pod served");
  const load = openLoop(w.url, 10);
  await sleep(300);
  let sessions = Number((await row()).stot);
  const connectionsBefore = sessions; // since the pod was added
  await pod.vanish();
  const vanishedAt = performance.now();
  let downAfterMs: number | undefined;
  let lastConnectionAfterMs = 0;
  while (performance.now() - vanishedAt < watchMs) {
    const now = await row();
    const at = performance.now() - vanishedAt;
    if (Number(now.stot) > sessions) [sessions, lastConnectionAfterMs] = [Number(now.stot), at];
    if (downAfterMs === undefined && (now.status ?? "").startsWith("DOWN")) downAfterMs = at;
    await sleep(25);
  }
  const result = await load.stop();
  return { downAfterMs, lastConnectionAfterMs, connectionsBefore, failedAfter: result.failedStarts.filter((s) => s >= vanishedAt).length };
}

test("health check on: a pod whose host vanished gets no new connection after 2 s, and HAProxy says DOWN", netnsPodTestOptions(), async (t) => {
  const r = await vanishUnderLoad(t, { "health-check": "true" }, 3_500);
  t.diagnostic(`DOWN after ${r.downAfterMs} ms, last new connection ${Math.round(r.lastConnectionAfterMs)} ms after the host vanished; ${r.failedAfter} requests sent after it failed`);
  assert.ok(r.connectionsBefore > 0, "the pod had traffic before");
  assert.ok(r.downAfterMs !== undefined && r.downAfterMs <= 2_000, `DOWN within 2 s: ${JSON.stringify(r)}`);
  assert.ok(r.lastConnectionAfterMs <= 2_000, `no new connection after 2 s: ${JSON.stringify(r)}`);
  // The few sent to it before DOWN time out on connect and are retried elsewhere.
  assert.equal(r.failedAfter, 0, `failed requests: ${JSON.stringify(r)}`);
});

test("health check off (the default): the vanished host still gets new connections after 2 s", netnsPodTestOptions(), async (t) => {
  const r = await vanishUnderLoad(t, {}, 3_000);
  t.diagnostic(`last new connection ${Math.round(r.lastConnectionAfterMs)} ms after the host vanished`);
  assert.equal(r.downAfterMs, undefined, "never DOWN without a check");
  assert.ok(r.lastConnectionAfterMs > 2_000, `still picked: ${JSON.stringify(r)}`);
});

test("status: a pod Kubernetes still says is ready but HAProxy's check marked DOWN is counted as down", async (t) => {
  const w = await world(t, "tcp", { "health-check": "100ms" });
  const row = async () => (await readStatus(w.options.socket)).find((r) => r.servicePort === w.backend);
  assert.equal((await row())?.down, 0);
  await w.pods[0]!.stop(0); // its endpoint stays in the slice
  const down = await waitFor(async () => ((await row())?.down === 1 ? await row() : undefined), 5_000, "one server down");
  assert.equal(down.ready, 3, "still ready as far as Kubernetes and the engine know");
  // The gauge follows at the next full read of HAProxy's state.
  w.sidecar.dataplane.requestFullSync();
  await waitFor(() => w.sidecar.metrics.render().includes(`kube_haproxy_servers_down{backend="${w.backend}"} 1`), 5_000, "the servers_down gauge");
});

// The HAProxy under test (CI runs the suite once per version).
const BINARIES = [haproxyBinary()];

for (const binary of BINARIES) {
  test(`${binary}: a dynamic server added with the check parameters is checked once its health is enabled`, async (t) => {
    const dir = await tempDir(t);
    const live = await startPod("127.0.13.1");
    t.after(() => live.stop());
    const dead = "127.0.13.2"; // nothing listens there: connections are refused
    const haproxy = await startHaproxy({
      dir,
      binary,
      config: [
        "global", `  stats socket ${dir}/runtime.sock mode 600 level admin`,
        "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 1m", "  timeout server 1m",
        "listen be", `  bind 127.0.0.1:${await freePort()}`, "  balance roundrobin", "  server-template s 1-1 0.0.0.0:0 disabled", "",
      ].join("\n"),
    });
    t.after(() => haproxy.stop());
    const client = new RuntimeClient({ address: haproxy.runtimeSocket });
    t.after(() => client.close());
    client.start();
    await client.waitConnected();
    const check = { intervalMs: 200 };
    for (const [name, ip, health] of [["d2", dead, true], ["d3", live.ip, true], ["d4", dead, false]] as const) {
      await client.execute(addServer("be", name, ip, live.port, check));
      if (health) await client.execute(enableHealth("be", name));
      await client.execute(setServerState("be", name, "ready"));
    }
    const status = async (name: string): Promise<string | undefined> => (await showStat(haproxy.runtimeSocket)).find((r) => r.svname === name)?.status;
    await waitFor(async () => (await status("d2"))?.startsWith("DOWN"), 5_000, "d2 (refused) DOWN");
    await waitFor(async () => (await status("d3")) === "UP", 5_000, "d3 UP");
    assert.equal(await status("d4"), "no check", "without `enable health` HAProxy never checks a dynamic server");
  });
}
