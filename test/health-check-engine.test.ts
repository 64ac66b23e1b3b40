// Health checks and the engine's runtime updates must not fight (issue 13). These tests fail
// until the planner and the engine do their part:
//   - a slot that gets another endpoint while it is serving goes maint → addr → ready (or
//     drain): passing through maint resets HAProxy's check state, so the new endpoint is served
//     at once instead of inheriting the old one's DOWN until `rise` checks pass;
//   - a dynamic server of a health-checked backend is added with the check parameters
//     (addServer(…, backend.healthCheck)) and `enable health` before `state ready`.
// Real HAProxy, the sidecar in process, loopback pods.

import assert from "node:assert/strict";
import { test } from "node:test";
import { showStat } from "../src/sim/failover.ts";
import { startGracefulPod } from "../src/sim/graceful-pod.ts";
import { waitFor } from "./helpers.ts";
import { world } from "./world.ts";

/** An address beside the world's pods (same 127.B/16), not used by them. */
function spareIp(podIp: string, n: number): string {
  return `${podIp.split(".").slice(0, 2).join(".")}.9.${n}`;
}

test("a slot re-addressed while HAProxy's check says DOWN serves its new endpoint at once", async (t) => {
  const w = await world(t, "tcp", { "health-check": "2s" });
  const [dead, ...alive] = w.pods;
  const row = async (ip: string): Promise<Record<string, string> | undefined> =>
    (await showStat(w.haproxy.runtimeSocket)).find((r) => r.pxname === w.backend && r.addr === `${ip}:${dead!.port}`);
  await dead!.stop(0); // its endpoint stays in the slice: connections refused, checks fail
  const down = await waitFor(async () => ((await row(dead!.ip))?.status?.startsWith("DOWN") ? await row(dead!.ip) : undefined), 10_000, "the dead pod DOWN");
  const fresh = await startGracefulPod(spareIp(dead!.ip, 1), dead!.port);
  t.after(() => fresh.stop(100).then(() => {}));
  // The cluster noticed: the dead pod leaves the slice and its replacement arrives in the same write.
  w.setEndpoints([fresh, ...alive].map((pod) => ({ ip: pod.ip })));
  const served = await waitFor(async () => {
    const now = await row(fresh.ip);
    return now && now.status !== "MAINT" ? now : undefined;
  }, 10_000, "the new endpoint in service");
  assert.equal(served.svname, down.svname, "precondition: the new endpoint took the dead one's slot");
  assert.match(served.status ?? "", /^UP/, `the new endpoint inherited the old one's check state: ${served.status} (expected UP at once)`);
});

test("a dynamic server of a health-checked backend is checked: added with the check parameters, health enabled", async (t) => {
  const w = await world(t, "tcp", { "health-check": "200ms" }); // 4 slots, 3 pods
  const extra = [await startGracefulPod(spareIp(w.pods[0]!.ip, 1), w.pods[0]!.port), await startGracefulPod(spareIp(w.pods[0]!.ip, 2), w.pods[0]!.port), await startGracefulPod(spareIp(w.pods[0]!.ip, 3), w.pods[0]!.port)];
  t.after(() => Promise.all(extra.map((pod) => pod.stop(100))).then(() => {}));
  w.setEndpoints([...w.pods, ...extra].map((pod) => ({ ip: pod.ip })));
  const dynamic = async (): Promise<Record<string, string>[]> =>
    (await showStat(w.haproxy.runtimeSocket)).filter((r) => r.pxname === w.backend && /^d\d+$/.test(r.svname ?? "") && r.status !== "MAINT");
  const servers = await waitFor(async () => ((await dynamic()).length === 2 ? await dynamic() : undefined), 10_000, "two dynamic servers in service");
  for (const server of servers) assert.notEqual(server.status, "no check", `${server.svname} (${server.addr}) is not health-checked`);
  const victim = extra.find((pod) => `${pod.ip}:${pod.port}` === servers[0]!.addr)!;
  await victim.stop(0);
  await waitFor(async () => (await dynamic()).find((r) => r.addr === servers[0]!.addr)?.status?.startsWith("DOWN"), 5_000, `${servers[0]!.svname} DOWN once its pod is gone`);
});
