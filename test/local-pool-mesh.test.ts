// Mesh mode's kernel entries as the data plane's local pool plans them (pure, with a recording
// capture driver): a load balancer IP's source ranges changed at runtime replace its element in
// one update (never uncaptured meanwhile), and eTP Local's external backend gets the node's own
// entries pointing to the listener of the Service port's cluster-wide backend.

import assert from "node:assert/strict";
import { test } from "node:test";
import { LocalPool, type CaptureDriver } from "../src/dataplane/local.ts";
import { entryId, type PoolEntry } from "../src/dataplane/pool.ts";
import type { Backend } from "../src/model.ts";

function recordingDriver() {
  const kernel = new Map<string, PoolEntry>();
  const updates: { remove: readonly PoolEntry[]; add: readonly PoolEntry[] }[] = [];
  const driver: CaptureDriver = {
    read: async () => ({ entries: [...kernel.values()], noEndpoints: [] }),
    install: async () => {},
    update: async (changes) => {
      updates.push(changes);
      for (const entry of changes.remove) kernel.delete(entryId(entry));
      for (const entry of changes.add) kernel.set(entryId(entry), entry);
    },
    accepts: () => true,
  };
  return { driver, kernel, updates };
}

function backend(name: string, binds: Backend["binds"], extra: Partial<Backend> = {}): Backend {
  // With an endpoint: a Service port without one is refused, not captured (test/local-dataplane.test.ts).
  const endpoints = [{ ip: "10.0.0.1", port: 8080, state: "ready" as const }];
  return { name, servicePort: `default/${name}`, mode: "tcp", algorithm: "roundrobin", binds, minSlots: 2, endpoints, ...extra };
}

async function settle(pool: LocalPool): Promise<void> {
  await pool.before();
  await pool.after(() => true);
}

async function start(...services: Backend[]) {
  const { driver, kernel, updates } = recordingDriver();
  const pool = new LocalPool({ capture: driver, firstPort: 15100, families: ["ipv4"], minSlots: 2, defaultGroup: { mode: "tcp", algorithm: "roundrobin", affinity: 0 } });
  for (const service of services) pool.setService(service);
  await pool.read([]);
  await settle(pool);
  updates.length = 0;
  return { pool, kernel, updates };
}

test("source ranges changed at runtime: the element is replaced in one update, never taken out alone", async () => {
  const lb = (sourceRanges?: string[]) => backend("lb", [{ address: "10.96.0.1", port: 80 }, { address: "198.18.201.1", port: 80, ...(sourceRanges ? { sourceRanges } : {}) }]);
  const { pool, kernel, updates } = await start(lb(["198.18.50.0/24"]));
  assert.deepEqual(kernel.get("198.18.201.1 80")?.sourceRanges, ["198.18.50.0/24"]);
  for (const ranges of [["198.18.9.0/24"], [], undefined]) {
    pool.setService(lb(ranges));
    await settle(pool);
    const last = updates.at(-1)!;
    assert.equal(updates.length, 1, JSON.stringify(updates));
    assert.deepEqual([last.remove.map((e) => e.ip), last.add.map((e) => [e.ip, e.sourceRanges])], [["198.18.201.1"], [["198.18.201.1", ranges]]]);
    assert.deepEqual(kernel.get("198.18.201.1 80")?.sourceRanges, ranges);
    updates.length = 0;
  }
});

test("eTP Local: the node's own entries of the external backend point to the cluster-wide backend's listener, without source ranges", async () => {
  const cluster = backend("web", [{ address: "10.96.0.2", port: 80 }]);
  const external = backend("web:external", [{ address: "198.18.201.2", port: 80, sourceRanges: ["198.18.50.0/24"] }], { nodePort: 30082, nodeShortcut: "web" });
  const { pool, kernel } = await start(cluster, external);
  const listener = (name: string): number => Number(pool.claimOf(name)!.split(":").at(-1));
  assert.notEqual(listener("web"), listener("web:external"));
  assert.deepEqual(kernel.get("198.18.201.2 80"), { ip: "198.18.201.2", port: 80, listenPort: listener("web:external"), sourceRanges: ["198.18.50.0/24"] });
  assert.deepEqual(kernel.get("node 198.18.201.2 80"), { ip: "198.18.201.2", port: 80, listenPort: listener("web"), fromNode: true });
  assert.deepEqual(kernel.get("node * 30082"), { port: 30082, listenPort: listener("web"), fromNode: true });
  assert.equal(kernel.get("node 10.96.0.2 80"), undefined, "the ClusterIP has no short circuit of its own");
  // The external backend goes: its node entries go with it.
  pool.deleteService("web:external");
  await settle(pool);
  assert.deepEqual([...kernel.keys()], ["10.96.0.2 80"]);
});
