// Local mode's data plane, deterministic: the order of the kernel's element changes for a Service
// port without endpoints around the flush (LocalPool, a capture driver in memory), and, with a
// fake clock and a fake runtime API running `render`'s pool configuration, a capture driver that
// fails when told: a failed nft change is reported (captureFailed, counted by the metric), and the
// full resync after the backoff puts the map element in.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import { LocalPool, type CaptureDriver, type CaptureUpdate, type LocalOptions } from "../src/dataplane/local.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { entryId, freshPool, type NoEndpointEntry, type PoolEntry } from "../src/dataplane/pool.ts";
import { KubeHaproxyError } from "../src/errors.ts";
import { renderPoolConfig } from "../src/haproxy/render-pool.ts";
import { silentLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { observe } from "../src/observe.ts";
import { FakeClock, FakeTransport } from "./fakes.ts";
import { makeBackend, ready } from "./helpers.ts";

/** The kernel's maps in memory, each update logged; `failures` makes the next updates throw as nft would. */
function memoryCapture(): CaptureDriver & { readonly map: Map<string, PoolEntry>; readonly noEndpoints: Map<string, NoEndpointEntry>; readonly log: string[]; failures: number } {
  const map = new Map<string, PoolEntry>();
  const noEndpoints = new Map<string, NoEndpointEntry>();
  const show = (entries: readonly { ip?: string; port: number }[]): string => entries.map((e) => entryId(e)).join(",");
  const capture = {
    map,
    noEndpoints,
    log: [] as string[],
    failures: 0,
    read: async () => ({ entries: [...map.values()], noEndpoints: [...noEndpoints.values()] }),
    install: async () => {},
    update: async ({ remove, add, noEndpoints: refuse }: CaptureUpdate) => {
      if (capture.failures > 0) {
        capture.failures--;
        throw new KubeHaproxyError("E_CAPTURE_FAILED", "nft: Error: Could not process rule: Operation not permitted");
      }
      capture.log.push(`-[${show(remove)}] +[${show(add)}] no-endpoint -[${show(refuse?.remove ?? [])}] +[${(refuse?.add ?? []).map((e) => `${entryId(e)} ${e.verdict}`).join(",")}]`);
      for (const entry of remove) map.delete(entryId(entry));
      for (const entry of add) map.set(entryId(entry), entry);
      for (const entry of refuse?.remove ?? []) noEndpoints.delete(entryId(entry));
      for (const entry of refuse?.add ?? []) noEndpoints.set(entryId(entry), entry);
    },
    accepts: () => true,
  };
  return capture;
}

test("local mode: a Service port without endpoints is not captured but refused; its element swaps with the capture's around the flush", async () => {
  const capture = memoryCapture();
  const pool = new LocalPool({ capture, firstPort: 20_000, families: ["ipv4"], minSlots: 4, defaultGroup: { mode: "tcp", algorithm: "roundrobin", affinity: 0 } });
  await pool.read([]);
  const web = (endpoints: ReturnType<typeof ready>[], patch = {}) => makeBackend("default:web:80", endpoints, { servicePort: "default/web:80", binds: [{ address: "10.96.0.10", port: 80 }], ...patch });
  const sync = async (): Promise<string[]> => {
    capture.log.length = 0;
    await pool.before();
    capture.log.push("flush");
    await pool.after(() => true);
    return [...capture.log];
  };

  pool.setService(web([]));
  assert.deepEqual(await sync(), ["-[] +[] no-endpoint -[] +[10.96.0.10 80 reject]", "flush"]);
  assert.deepEqual([...capture.map.keys()], [], "not captured");

  pool.setService(web([ready("10.0.0.1", 8080)]));
  assert.deepEqual(await sync(), ["flush", "-[] +[10.96.0.10 80] no-endpoint -[10.96.0.10 80] +[]"], "servers first, then captured and no longer refused, in one transaction");

  pool.setService(web([], { noEndpointVerdict: "drop" }));
  assert.deepEqual(await sync(), ["-[10.96.0.10 80] +[] no-endpoint -[] +[10.96.0.10 80 drop]", "flush"], "out of the capture and refused before the slots go");

  pool.setService(web([], { noEndpointVerdict: "reject" }));
  assert.deepEqual(await sync(), ["-[] +[] no-endpoint -[10.96.0.10 80] +[10.96.0.10 80 reject]", "flush"], "a new verdict");

  pool.deleteService("default:web:80");
  assert.deepEqual(await sync(), ["-[] +[] no-endpoint -[10.96.0.10 80] +[]", "flush"]);
  assert.deepEqual([...capture.noEndpoints.keys()], []);
});

test("local mode: a failed capture change is counted, and the resync after the backoff puts the element in", async () => {
  const capture = memoryCapture();
  const local: LocalOptions = { capture, firstPort: 20_000, families: ["ipv4"], minSlots: 4, defaultGroup: { mode: "tcp", algorithm: "roundrobin", affinity: 0 } };
  const clock = new FakeClock();
  const transport = new FakeTransport(renderPoolConfig(freshPool([], local).map((backend) => layoutBackend(backend)), { runtimeSocket: "/tmp/x.sock" }));
  const dataplane = new Dataplane({ transport, log: silentLogger, clock, retryMinMs: 100, retryMaxMs: 1_000, local });
  const metrics = createMetrics();
  const emitter = (): never => new EventEmitter() as never;
  observe({ client: emitter(), dataplane, proxier: emitter(), watch: emitter(), metrics, log: silentLogger, wallNow: () => 0, stopping: () => false });
  const failures: string[] = [];
  dataplane.on("captureFailed", (message) => failures.push(message));
  dataplane.start();
  dataplane.beginSync();
  await clock.advance(0);

  capture.failures = 1;
  dataplane.setBackend(makeBackend("default:web:80", [ready("10.0.0.1", 8080)], { servicePort: "default/web:80", binds: [{ address: "10.96.0.10", port: 80 }] }));
  await clock.advance(0);
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /Operation not permitted/);
  assert.match(metrics.render(), /^kube_haproxy_capture_failures_total 1$/m);
  assert.deepEqual([...capture.map.values()], [], "nothing in the kernel yet");

  await clock.advance(100); // the backoff, then a full resync
  assert.deepEqual([...capture.map.values()], [{ ip: "10.96.0.10", port: 80, listenPort: 20_000 }]);
  assert.equal(transport.servers("pool:tcp:roundrobin:0:20000")!.get("s1")!.ip, "10.0.0.1");
  assert.equal(failures.length, 1);
  await dataplane.whenSynced();
  await dataplane.stop();
});
