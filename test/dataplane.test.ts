// The data plane's scheduling, deterministic: a fake clock and a fake runtime API (test/fakes.ts).
// Mid-flush changes, reconnects, reloads in the queue, backoff, the reaper, the latency samples.
// The same paths run against a real HAProxy in runtime-engine, reload and operate tests.

import assert from "node:assert/strict";
import { test } from "node:test";
import { once } from "node:events";
import { createServer } from "node:net";
import { probeBind, type BindProbe } from "../src/dataplane/bind-check.ts";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import type { FlushReport } from "../src/dataplane/options.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { KubeHaproxyError } from "../src/errors.ts";
import { STRUCTURE_ENV, renderConfig, type RenderOptions } from "../src/haproxy/render.ts";
import { silentLogger } from "../src/log.ts";
import type { Backend } from "../src/model.ts";
import { FakeClock, FakeReloader, FakeTransport } from "./fakes.ts";
import { makeBackend, ready } from "./helpers.ts";

const RENDER: RenderOptions = { runtimeSocket: "/tmp/x.sock" };
const web = makeBackend("default:web:80", [], { servicePort: "default/web:80", minSlots: 4, binds: [{ address: "127.0.0.1", port: 8080 }] });
const api = makeBackend("default:api:80", [], { servicePort: "default/api:80", minSlots: 4, binds: [{ address: "127.0.0.1", port: 8081 }] });

function setup(options: { backends?: Backend[]; reload?: boolean; start?: boolean; probe?: BindProbe } = {}) {
  const backends = options.backends ?? [web, api];
  const clock = new FakeClock();
  const transport = new FakeTransport(renderConfig(backends.map((b) => layoutBackend(b)), RENDER));
  const reloader = new FakeReloader(transport);
  const dataplane = new Dataplane({
    transport,
    log: silentLogger,
    clock,
    configSyncPeriodMs: 60_000,
    retryMinMs: 100,
    retryMaxMs: 1_000,
    deleteRetryMs: 2_000,
    reload: options.reload === false ? undefined : { reloader, render: RENDER, minReloadPeriodMs: 0, ...(options.probe ? { probe: options.probe } : {}) },
  });
  const reports: FlushReport[] = [];
  const failed: string[] = [];
  const samples: number[] = [];
  dataplane.on("flushed", (report) => reports.push(report));
  dataplane.on("failed", (command) => failed.push(command));
  dataplane.on("applied", (_backend, triggerTime, at) => triggerTime !== undefined && samples.push(at - triggerTime));
  dataplane.start();
  // The desired state the lists give: what the running configuration was rendered from.
  for (const backend of backends) dataplane.setBackend(backend);
  const lines = (pattern: RegExp): string[] => transport.sent.map((s) => s.line).filter((line) => pattern.test(line));
  return { clock, transport, reloader, dataplane, reports, failed, samples, lines };
}

const endpoints = (...ips: string[]) => ips.map((ip) => ready(ip, 80));

test("nothing that changes HAProxy is sent before beginSync(): both initial lists first; its state is read ahead once (issue 13, item 1; issue 14)", async () => {
  const { clock, transport, dataplane } = setup();
  await clock.advance(0);
  assert.ok(transport.connected);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(5_000);
  const reads = ["show servers state", `show env ${STRUCTURE_ENV}`];
  assert.deepEqual(transport.sent.map((s) => s.line), reads, "a read, no slot to maint");
  dataplane.beginSync();
  await clock.advance(0);
  assert.equal(transport.servers("default:web:80")!.get("s1")!.ip, "10.0.0.1");
  assert.deepEqual(transport.sent.filter((s) => s.line.startsWith("show ")).map((s) => s.line), reads, "the read ahead served the first sync");
});

test("a reconnect between the read ahead and beginSync() reads HAProxy again (issue 14)", async () => {
  const { clock, transport, dataplane } = setup();
  await clock.advance(0);
  // Changed after the read ahead (as by a restarted HAProxy): only a new read can know it.
  transport.servers("default:web:80")!.get("s2")!.ip = "10.9.9.9";
  transport.servers("default:web:80")!.get("s2")!.state = "ready";
  transport.reconnect();
  await clock.advance(0);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  dataplane.beginSync();
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.equal(transport.sent.filter((s) => s.line === "show servers state").length, 2, "read ahead, and again after the reconnect; not a third time at beginSync");
  assert.equal(transport.servers("default:web:80")!.get("s2")!.state, "maint", "what changed before the reconnect is repaired");
});

test("changes during a flush in flight are merged into the next one; nothing is sent twice", async () => {
  const { clock, transport, dataplane, lines } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  transport.hold = true;
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(0);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1", "10.0.0.2") });
  dataplane.setBackend({ ...api, endpoints: endpoints("10.0.1.1") });
  await clock.advance(0);
  assert.equal(lines(/^set server/).length, 0, "held");
  transport.hold = false;
  transport.release();
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.deepEqual(lines(/^set server default:web:80\/s1 /), ["set server default:web:80/s1 addr 10.0.0.1 port 80", "set server default:web:80/s1 state ready"]);
  assert.deepEqual(lines(/^set server default:web:80\/s2 /), ["set server default:web:80/s2 addr 10.0.0.2 port 80", "set server default:web:80/s2 state ready"]);
  assert.equal(transport.servers("default:api:80")!.get("s1")!.state, "ready");
});

test("a backend changed again after its flush took it is told applied once more, when the newer change is in HAProxy", async () => {
  const { clock, transport, dataplane } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  const seen: string[][] = [];
  dataplane.on("applied", (name) => name === web.name && seen.push([...dataplane.applied(web.name)!.values()].filter((slot) => slot.state === "ready").map((slot) => slot.ip)));
  transport.hold = true;
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(0); // the flush took web and planned 10.0.0.1; its replies are held
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.2") });
  transport.hold = false;
  transport.release();
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.deepEqual(seen.at(-1), ["10.0.0.2"], `the last "applied" shows the newer change (seen: ${JSON.stringify(seen)})`);
  assert.equal(dataplane.health().pendingMs, 0, "nothing left pending");
});

test("a connection lost mid-batch is no failure and no backoff; the reconnect repairs at once (issue 9, bug 7)", async () => {
  const { clock, transport, dataplane, reports, failed, lines } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  transport.hold = true;
  dataplane.setBackend({ ...api, endpoints: endpoints("10.0.1.1", "10.0.1.2") });
  await clock.advance(0);
  const before = reports.length;
  transport.drop(); // a reload elsewhere, HAProxy restarted: the replies never come
  await clock.advance(0);
  assert.deepEqual(failed, [], "the unanswered commands are not failures");
  assert.ok(reports.slice(before).every((report) => report.failed === 0));
  transport.hold = false;
  transport.connectAgain();
  await clock.advance(0);
  assert.equal(lines(/^show servers state/).length, 2, "a full read at once after the reconnect");
  await dataplane.whenSynced();
  assert.equal(transport.servers("default:api:80")!.get("s2")!.state, "ready");
});

test("a reconnect cancels a pending backoff (issue 9, bugs 2 and 7)", async () => {
  const { clock, transport, dataplane, failed, lines } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  transport.refuse = (line) => (line.includes("addr 10.0.0.9") ? "Invalid addr '10.0.0.9'" : undefined);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.9") });
  await clock.advance(0);
  assert.equal(failed.length, 1);
  transport.refuse = () => undefined;
  await clock.advance(50); // half of the 100 ms backoff
  transport.drop();
  transport.connectAgain();
  await clock.advance(0);
  assert.equal(lines(/^show servers state/).length, 2, "the full sync at once, not after the backoff");
  await dataplane.whenSynced();
  assert.equal(transport.servers("default:web:80")!.get("s1")!.ip, "10.0.0.9");
});

test("a refused command: full sync after backoff, doubling; a change meanwhile waits for it (issue 9, bug 2)", async () => {
  const { clock, transport, dataplane, lines } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  let refuse = true;
  transport.refuse = (line) => (refuse && line.startsWith("set server default:web:80") ? "No such server." : undefined);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(0);
  const reads = (): number => lines(/^show servers state/).length;
  assert.equal(reads(), 1);
  dataplane.setBackend({ ...api, endpoints: endpoints("10.0.1.1") });
  await clock.advance(99);
  assert.equal(lines(/api:80/).length, 0, "the change waits for the backoff");
  await clock.advance(1);
  assert.equal(reads(), 2, "the full sync after 100 ms");
  await clock.advance(199);
  assert.equal(reads(), 2);
  await clock.advance(1);
  assert.equal(reads(), 3, "then after 200 ms");
  refuse = false;
  await clock.advance(400);
  await dataplane.whenSynced();
  assert.equal(transport.servers("default:web:80")!.get("s1")!.state, "ready");
  assert.equal(transport.servers("default:api:80")!.get("s1")!.state, "ready");
});

test("a dynamic server that still has connections waits in the reaper: its own timer, outside health; other changes at once (issue 9, bugs 1 and 2)", async () => {
  const small = { ...web, minSlots: 1 };
  const { clock, transport, dataplane, lines } = setup({ backends: [small, api] });
  dataplane.beginSync();
  await clock.advance(0);
  dataplane.setBackend({ ...small, endpoints: endpoints("10.0.0.1", "10.0.0.2") });
  await clock.advance(0);
  assert.equal(transport.servers("default:web:80")!.get("d2")!.state, "ready");
  transport.busy.add("default:web:80/d2");
  dataplane.setBackend({ ...small, endpoints: endpoints("10.0.0.1") });
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.deepEqual(lines(/^del server/), ["del server default:web:80/d2"], "deleted right after maint was confirmed");
  for (let i = 0; i < 60; i++) {
    await clock.advance(1_000);
    assert.equal(dataplane.health().pendingMs, 0);
  }
  assert.equal(lines(/^del server/).length, 31, "tried again every 2 s for a minute");
  // Another backend's change does not wait for the reaper's timer.
  await clock.advance(500);
  dataplane.setBackend({ ...api, endpoints: endpoints("10.0.1.1") });
  await clock.advance(0);
  assert.equal(transport.servers("default:api:80")!.get("s1")!.state, "ready");
  transport.busy.clear();
  await clock.advance(2_000);
  assert.equal(transport.servers("default:web:80")!.has("d2"), false, "deleted once the connection closed");
});

test("a structural change waits for the batch in flight, reloads in the same queue, and then talks to the new worker only (issue 13, item 6)", async () => {
  const { clock, transport, reloader, dataplane, failed } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  transport.hold = true;
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(0);
  const shop = makeBackend("shop:cart:80", endpoints("10.0.2.1"), { servicePort: "shop/cart:80", binds: [{ address: "127.0.0.1", port: 8082 }] });
  dataplane.setBackend(shop);
  await clock.advance(0);
  assert.equal(reloader.configs.length, 0, "not while a batch is in flight");
  transport.staleConnects = 2; // the first connections after the reload still reach the old worker
  transport.hold = false;
  transport.release();
  await clock.advance(0);
  await clock.advance(100);
  await dataplane.whenSynced();
  assert.equal(reloader.configs.length, 1);
  assert.match(reloader.configs[0]!, /server s1 10\.0\.0\.1:80/, "rendered from the owner's slot assignment");
  const newWorker = transport.worker;
  const after = transport.sent.slice(transport.sent.findIndex((s) => s.pid === newWorker));
  assert.ok(after.length > 0 && after.every((s) => s.pid === newWorker), "after the switch, only the new worker");
  assert.deepEqual(failed, [], "no 'Proxy is disabled'");
  assert.equal(transport.servers("shop:cart:80")!.get("s1")!.ip, "10.0.2.1");
});

test("the reload follows the running worker's structure (show env), not a file; a refused one is not retried until the structure changes (issue 9, bug 6)", async () => {
  const { clock, reloader, dataplane, transport } = setup();
  dataplane.beginSync();
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.equal(reloader.configs.length, 0, "the running worker has this structure");
  reloader.failWith = new KubeHaproxyError("E_CONFIG_INVALID", "haproxy -c refused it", { reply: "[ALERT] nope" });
  dataplane.setBackend({ ...api, algorithm: "leastconn" });
  await clock.advance(0);
  assert.equal(reloader.configs.length, 1);
  await clock.advance(10_000);
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1") });
  await clock.advance(10_000);
  assert.equal(reloader.configs.length, 1, "endpoint changes do not retry a refused structure");
  assert.equal(transport.servers("default:web:80")!.get("s1")!.state, "ready");
  reloader.failWith = undefined;
  dataplane.setBackend({ ...api, algorithm: "first" });
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.equal(reloader.configs.length, 2, "a new structure is tried");
});

test("add server refused (the running algorithm takes none): not retried after the full sync it causes (issue 9, bug 4)", async () => {
  const sticky = { ...web, algorithm: "static-rr", minSlots: 1 };
  const { clock, dataplane, reloader, lines, transport } = setup({ backends: [sticky, api] });
  reloader.failWith = new KubeHaproxyError("E_RELOAD_FAILED", "the master is gone");
  dataplane.beginSync();
  await clock.advance(0);
  // The cluster says roundrobin (dynamic servers), the running worker still has static-rr.
  dataplane.setBackend({ ...sticky, algorithm: "roundrobin", endpoints: endpoints("10.0.0.1", "10.0.0.2", "10.0.0.3") });
  for (let i = 0; i < 20; i++) await clock.advance(1_000);
  assert.equal(lines(/^add server/).length, 2, `one try per endpoint over the template, not one per retry:\n${transport.sent.map((s) => s.line).join("\n")}`);
});

test("endpoints over capacity are counted once each, not at every flush (issue 9, bug 5)", async () => {
  const sticky = { ...web, algorithm: "static-rr", minSlots: 1 };
  const { clock, dataplane, reloader } = setup({ backends: [sticky, api] });
  reloader.failWith = new KubeHaproxyError("E_RELOAD_FAILED", "no new worker");
  const overflows: string[] = [];
  dataplane.on("overflow", (_backend, keys) => overflows.push(...keys));
  dataplane.beginSync();
  await clock.advance(0);
  dataplane.setBackend({ ...sticky, endpoints: endpoints("10.0.0.1", "10.0.0.2", "10.0.0.3") });
  await clock.advance(0);
  for (let i = 0; i < 5; i++) {
    dataplane.requestFullSync();
    await clock.advance(1_000);
  }
  assert.deepEqual(overflows, ["10.0.0.2:80", "10.0.0.3:80"]);
});

test("latency samples: none for trigger times before the start, one per change, none from full syncs (issue 9, bug 3)", async () => {
  const { clock, dataplane, samples } = setup();
  const before = clock.wallNow() - 3_600_000;
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1"), triggerTime: before });
  dataplane.setBackend({ ...api, triggerTime: before });
  dataplane.beginSync();
  await clock.advance(0);
  await dataplane.whenSynced();
  assert.deepEqual(samples, []);
  await clock.advance(1_000);
  const trigger = clock.wallNow() - 5;
  dataplane.setBackend({ ...web, endpoints: endpoints("10.0.0.1", "10.0.0.2"), triggerTime: trigger });
  await clock.advance(0);
  for (let i = 0; i < 3; i++) {
    dataplane.requestFullSync();
    await clock.advance(60_000);
  }
  assert.deepEqual(samples, [5]);
});

test("a Service port whose bind the node refuses is left out before the reload, once per occurrence, no reload loop; back at the resync after it is freed (issue 13, item 2)", async () => {
  const taken = new Set(["127.0.0.1:9090"]);
  const probed: string[] = [];
  const probe: BindProbe = async (bind) => {
    probed.push(`${bind.address}:${bind.port}`);
    return taken.has(`${bind.address}:${bind.port}`) ? "EADDRINUSE" : undefined;
  };
  const { clock, reloader, dataplane } = setup({ probe });
  const left: string[] = [];
  dataplane.on("unbindable", (backend, servicePort, why) => left.push(`${backend} ${servicePort} ${why}`));
  dataplane.beginSync();
  await clock.advance(0);
  assert.equal(probed.length, 0, "the running worker's binds are never probed");
  const blocked = makeBackend("default:blocked:90", endpoints("10.0.0.9"), { servicePort: "default/blocked:90", binds: [{ address: "127.0.0.1", port: 9090 }] });
  dataplane.setBackend(blocked);
  await clock.advance(0);
  assert.deepEqual(left, ["default:blocked:90 default/blocked:90 127.0.0.1:9090 (EADDRINUSE)"]);
  assert.equal(reloader.configs.length, 0, "no reload for it");
  assert.equal(dataplane.health().pendingMs, 0, "not a change that waits");
  let synced = false;
  void dataplane.whenSynced().then(() => (synced = true));
  await clock.advance(0);
  assert.ok(synced, "whenSynced does not wait for it");
  // Another Service port meanwhile: its reload goes through, without the left-out one.
  dataplane.setBackend(makeBackend("default:shop:80", [], { servicePort: "default/shop:80", binds: [{ address: "127.0.0.1", port: 8082 }] }));
  await clock.advance(0);
  assert.equal(reloader.configs.length, 1);
  assert.match(reloader.configs[0]!, /default:shop:80/);
  assert.doesNotMatch(reloader.configs[0]!, /default:blocked:90/);
  // Resyncs probe it again, report nothing new, reload nothing.
  const probesBefore = probed.length;
  await clock.advance(180_000);
  assert.ok(probed.filter((bind) => bind === "127.0.0.1:9090").length >= 3 && probed.length > probesBefore, "probed again at each resync");
  assert.equal(probed.filter((bind) => bind === "127.0.0.1:8082").length, 1, "probed before its reload, never once the new worker holds it");
  assert.equal(left.length, 1, "reported once");
  assert.equal(reloader.configs.length, 1, "no reload loop");
  // Freed: the next resync brings it.
  taken.clear();
  await clock.advance(60_000);
  assert.equal(reloader.configs.length, 2);
  assert.match(reloader.configs[1]!, /default:blocked:90/);
  assert.equal(left.length, 1);
});

test("2.8+: a reload refused because HAProxy could not bind a proxy leaves that Service port out; the rest reloads (issue 13, item 2)", async () => {
  const { clock, reloader, dataplane } = setup({ probe: async () => undefined });
  const left: string[] = [];
  dataplane.on("unbindable", (backend) => left.push(backend));
  dataplane.beginSync();
  await clock.advance(0);
  reloader.failWith = new KubeHaproxyError("E_RELOAD_FAILED", "the new HAProxy worker failed to start; the old one keeps running. HAProxy said: [ALERT]    (1) : Binding [x.cfg:9] for proxy default:late:90: protocol tcpv4: cannot bind socket (Address already in use) for [127.0.0.1:9091]");
  dataplane.setBackend(makeBackend("default:late:90", [], { servicePort: "default/late:90", binds: [{ address: "127.0.0.1", port: 9091 }] }));
  await clock.advance(0);
  assert.equal(reloader.configs.length, 1);
  assert.deepEqual(left, ["default:late:90"]);
  reloader.failWith = undefined;
  dataplane.setBackend(makeBackend("default:shop:80", [], { servicePort: "default/shop:80", binds: [{ address: "127.0.0.1", port: 8082 }] }));
  await clock.advance(0);
  assert.equal(reloader.configs.length, 2, "the other Service port's reload");
  assert.doesNotMatch(reloader.configs[1]!, /default:late:90/);
  // HAProxy's word holds over our probe until the structure changes: no retry at each resync.
  await clock.advance(180_000);
  assert.equal(reloader.configs.length, 2);
  assert.equal(dataplane.health().pendingMs, 0);
});

test("the real probe: a port held by another socket and an address not on the node cannot be bound; a free one can", async () => {
  const holder = createServer().listen(0, "127.0.0.1");
  await once(holder, "listening");
  try {
    const { port } = holder.address() as { port: number };
    assert.equal(await probeBind({ address: "127.0.0.1", port }), "EADDRINUSE");
    assert.equal(await probeBind({ address: "198.51.100.1", port }), "EADDRNOTAVAIL");
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    assert.equal(await probeBind({ address: "127.0.0.1", port }), undefined);
    assert.equal(await probeBind({ address: "127.0.0.1", port }), undefined, "closed at once: free again");
  } finally {
    holder.close();
  }
});
