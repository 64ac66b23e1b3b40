// Structural changes: hitless reloads under load, Services added and removed, refused
// configurations, long-lived connections. Real HAProxy, the sidecar in process, real clients.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { reloadCount } from "../src/haproxy/master.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort, get, startPods } from "../src/sim/pods.ts";
import { startLoad } from "../src/sim/load.ts";
import { tempDir, waitFor } from "./helpers.ts";
import { world } from "./world.ts";

for (const mode of ["tcp", "http"] as const) {
  test(`20 structural reloads under load in ${mode} mode: no failed request, state equal after each`, async (t) => {
    const w = await world(t, mode);
    const traffic = startLoad(w.url);
    for (let i = 1; i <= 20; i++) {
      // A Service port appears or goes away: structure.
      if (i % 2 === 1) w.cluster.api.upsert("services", makeService("default", "extra", [{ port: await freePort() }]));
      else w.cluster.api.remove("services", "default", "extra");
      await waitFor(async () => (await reloadCount(w.haproxy.masterSocket)) === i, 10_000, `reload ${i}`);
      await w.sidecar.reloader.idle();
      await w.sidecar.engine.whenSynced();
      const applied = w.sidecar.engine.applied(`default:web:${new URL(w.url).port}`)!;
      const serving = [...applied.values()].filter((slot) => slot.state === "ready").map((slot) => slot.ip).sort();
      assert.deepEqual(serving, w.pods.map((p) => p.ip).sort(), `runtime state after reload ${i}`);
    }
    await sleep(200);
    const result = await traffic.stop();
    assert.ok(result.sent > 200, `enough traffic (${result.sent})`);
    assert.equal(result.failed, 0, `failed requests: ${JSON.stringify(result)}`);
  });
}

test("a Service created after start is served after one reload; a deleted one stops being served", async (t) => {
  const w = await world(t, "tcp");
  const port = await freePort();
  const before = await reloadCount(w.haproxy.masterSocket);
  w.cluster.api.upsert("services", makeService("shop", "cart", [{ port }]));
  w.cluster.api.upsert("endpointslices", makeSlice("shop", "cart", "cart-1", [{ ip: w.pods[0]!.ip }], [{ port: w.pods[0]!.port }]));
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(async () => (await get(url).catch(() => "")) === w.pods[0]!.ip, 10_000, "the new Service served");
  assert.equal(await reloadCount(w.haproxy.masterSocket), before + 1, "one reload");
  w.cluster.api.remove("services", "shop", "cart");
  await waitFor(async () => (await get(url, 500).then(() => false, () => true)), 10_000, "the deleted Service no longer served");
});

test("a configuration HAProxy refuses: the old one keeps serving, the error is reported, no reload loop", async (t) => {
  // No Service makes `haproxy -c` refuse (translate.ts keeps every value within what the API
  // allows), so the check runs the real haproxy over the configuration and a broken file.
  const dir = await tempDir(t);
  const broken = join(dir, "broken.cfg");
  await writeFile(broken, "frontend broken\n  bind 127.0.0.1:notaport\n");
  const check = join(dir, "haproxy-check");
  await writeFile(check, `#!/bin/sh\nexec haproxy "$@" -f '${broken}'\n`, { mode: 0o755 });
  const w = await world(t, "tcp", { "haproxy-binary": check });
  const rejected: string[] = [];
  w.sidecar.reloader.on("rejected", (output) => rejected.push(output));
  const before = await reloadCount(w.haproxy.masterSocket);
  w.cluster.api.upsert("services", makeService("default", "other", [{ port: await freePort() }]));
  await waitFor(() => rejected.length === 1, 10_000, "the refusal reported");
  assert.match(rejected[0]!, /notaport/);
  await sleep(500);
  assert.equal(rejected.length, 1, "not retried while nothing changed");
  assert.equal(await reloadCount(w.haproxy.masterSocket), before, "no reload");
  assert.ok(w.pods.map((p) => p.ip).includes(await get(w.url)), "still serving");
});

test("a long-lived TCP connection opened before a reload keeps working after it", async (t) => {
  const w = await world(t, "tcp");
  const socket = connect({ host: "127.0.0.1", port: Number(new URL(w.url).port) });
  t.after(() => socket.destroy());
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.setEncoding("utf8");
  const ask = (): Promise<string> =>
    new Promise((resolve) => {
      let text = "";
      const onData = (chunk: string): void => {
        text += chunk;
        if (/\r\n\r\n[\s\S]*\n$/.test(text)) {
          socket.off("data", onData);
          resolve(text.split("\r\n\r\n")[1]!.trim());
        }
      };
      socket.on("data", onData);
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    });
  const first = await ask();
  const before = await reloadCount(w.haproxy.masterSocket);
  w.cluster.api.upsert("services", makeService("default", "other", [{ port: await freePort() }]));
  await waitFor(async () => (await reloadCount(w.haproxy.masterSocket)) === before + 1, 10_000, "a reload");
  await sleep(200);
  assert.equal(await ask(), first, "the same connection, the same pod, after the reload");
});

test("slots exhausted on an algorithm without dynamic servers: one reload grows the template", async (t) => {
  const w = await world(t, "tcp");
  const port = new URL(w.url).port;
  // static-rr takes no dynamic servers (a structural change itself: one reload).
  w.cluster.api.upsert("services", makeService("default", "web", [{ port: Number(port) }], (s) => (s.metadata!.annotations!["kube-haproxy.io/algorithm"] = "static-rr")));
  await waitFor(async () => (await reloadCount(w.haproxy.masterSocket)) === 1, 10_000, "the algorithm reload");
  await w.sidecar.reloader.idle();
  const more = await startPods(4, { base: 220, port: w.pods[0]!.port });
  t.after(async () => void (await Promise.all(more.map((pod) => pod.stop()))));
  const all = [...w.pods, ...more];
  // 7 endpoints, 4 template slots: overflow, then a reload that renders enough slots.
  w.cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", all.map((p) => ({ ip: p.ip })), [{ port: w.pods[0]!.port }]));
  await waitFor(async () => (await reloadCount(w.haproxy.masterSocket)) === 2, 10_000, "the growth reload");
  await w.sidecar.reloader.idle();
  await w.sidecar.engine.whenSynced();
  const status = w.sidecar.engine.statusOf(`default:web:${port}`);
  assert.ok(status.slots >= 7 && status.dynamic === 0 && status.overflow === 0, JSON.stringify(status));
  const seen = new Set<string>();
  for (let i = 0; i < 7 * 3; i++) seen.add(await get(w.url));
  assert.equal(seen.size, 7, "static-rr serves all seven");
});
