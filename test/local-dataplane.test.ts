// Local mode's data plane when the kernel refuses a change, deterministic: a fake clock, a fake
// runtime API running `render`'s pool configuration, and a capture driver in memory that fails
// when told. A failed nft change is reported (captureFailed, counted by the metric), and the
// full resync after the backoff puts the map element in.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import type { CaptureDriver, LocalOptions } from "../src/dataplane/local.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { entryId, freshPool, type PoolEntry } from "../src/dataplane/pool.ts";
import { KubeHaproxyError } from "../src/errors.ts";
import { renderPoolConfig } from "../src/haproxy/render-pool.ts";
import { silentLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { observe } from "../src/observe.ts";
import { FakeClock, FakeTransport } from "./fakes.ts";
import { makeBackend, ready } from "./helpers.ts";

/** The kernel's map in memory; `failures` makes the next updates throw as nft would. */
function memoryCapture(): CaptureDriver & { readonly map: Map<string, PoolEntry>; failures: number } {
  const map = new Map<string, PoolEntry>();
  const capture = {
    map,
    failures: 0,
    read: async () => [...map.values()],
    install: async () => {},
    update: async ({ remove, add }: { readonly remove: readonly PoolEntry[]; readonly add: readonly PoolEntry[] }) => {
      if (capture.failures > 0) {
        capture.failures--;
        throw new KubeHaproxyError("E_CAPTURE_FAILED", "nft: Error: Could not process rule: Operation not permitted");
      }
      for (const entry of remove) map.delete(entryId(entry));
      for (const entry of add) map.set(entryId(entry), entry);
    },
    accepts: () => true,
  };
  return capture;
}

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
