// Local mode's pool, pure: names, sizing, claims (kept, recovered from the kernel map, lowest
// free port of the group, unclaimed when the group is full), the rendered listen sections.

import assert from "node:assert/strict";
import { test } from "node:test";
import { entriesOf, entryId, freshPool, parsePoolBackendName, planClaims, poolBackendName, poolTarget, sizePool, type PoolBackend, type PoolGroup } from "../src/dataplane/pool.ts";
import { layoutBackend } from "../src/dataplane/planner.ts";
import { renderPoolConfig } from "../src/haproxy/render-pool.ts";
import type { Backend } from "../src/model.ts";
import { makeBackend, ready } from "./helpers.ts";

const TCP: PoolGroup = { mode: "tcp", algorithm: "roundrobin", affinity: 0 };
const STICKY: PoolGroup = { mode: "tcp", algorithm: "roundrobin", affinity: 60 };

function svc(name: string, ip: string, patch: Partial<Backend> = {}): Backend {
  return makeBackend(name, [ready("10.0.0.1", 8080)], { binds: [{ address: ip, port: 80 }], ...patch });
}

test("pool backend names carry group and listener port, and parse back; others are not pool backends", () => {
  const name = poolBackendName(STICKY, 10401);
  assert.equal(name, "pool:tcp:roundrobin:60:10401");
  assert.deepEqual(parsePoolBackendName(name), { name, group: STICKY, listenPort: 10401 });
  for (const other of ["shop:web:http", "pool:udp:roundrobin:0:1", "pool:tcp:roundrobin:0:70000", "pool:tcp:round robin:0:1"]) {
    assert.equal(parsePoolBackendName(other), undefined, other);
  }
});

test("sizing: 1.25 × Service ports + 8 per group, the default group always; existing ports kept, new ones above", () => {
  assert.deepEqual([0, 1, 4, 10, 100].map(poolTarget), [8, 10, 13, 21, 133]);
  const first = sizePool([], [svc("a", "10.96.0.1"), svc("b", "10.96.0.2", { affinityTimeoutSeconds: 60 })], TCP, 10400);
  assert.deepEqual(first.map((b) => [b.group.affinity, b.listenPort]), [
    ...Array.from({ length: 10 }, (_, i) => [0, 10400 + i]),
    ...Array.from({ length: 10 }, (_, i) => [60, 10410 + i]),
  ]);
  const many = Array.from({ length: 12 }, (_, i) => svc(`s${i}`, `10.96.1.${i}`));
  const grown = sizePool(first, many, TCP, 10400);
  assert.deepEqual(grown.slice(0, 20), first, "existing backends keep their ports");
  assert.deepEqual(grown.slice(20).map((b) => [b.group.affinity, b.listenPort]), Array.from({ length: poolTarget(12) - 10 }, (_, i) => [0, 10420 + i]));
  assert.deepEqual(sizePool(grown, many, TCP, 10400), grown, "big enough: unchanged");
});

test("claims: kept, recovered from the kernel map, else the lowest free port of the group; unclaimed when full", () => {
  const pool: PoolBackend[] = [10400, 10401, 10402].map((port) => ({ name: poolBackendName(TCP, port), group: TCP, listenPort: port }))
    .concat([{ name: poolBackendName(STICKY, 10403), group: STICKY, listenPort: 10403 }]);
  const services = new Map([
    ["a", svc("a", "10.96.0.1")],
    ["b", svc("b", "10.96.0.2")],
    ["c", svc("c", "10.96.0.3")],
    ["d", svc("d", "10.96.0.4")],
    ["e", svc("e", "10.96.0.5", { affinityTimeoutSeconds: 60 })],
  ]);
  const result = planClaims({
    services,
    pool,
    claims: new Map([["c", poolBackendName(TCP, 10400)]]),
    captured: new Map([[entryId({ ip: "10.96.0.4", port: 80 }), 10402]]),
  });
  assert.deepEqual([...result.claims].sort(), [
    ["a", poolBackendName(TCP, 10401)],
    ["c", poolBackendName(TCP, 10400)],
    ["d", poolBackendName(TCP, 10402)],
    ["e", poolBackendName(STICKY, 10403)],
  ]);
  assert.deepEqual(result.unclaimed, ["b"]);
});

test("claims: a Service port whose group changed moves to its new group; a kernel element of another group is not followed", () => {
  const pool: PoolBackend[] = [
    { name: poolBackendName(TCP, 10400), group: TCP, listenPort: 10400 },
    { name: poolBackendName(STICKY, 10401), group: STICKY, listenPort: 10401 },
  ];
  const sticky = new Map([["a", svc("a", "10.96.0.1", { affinityTimeoutSeconds: 60 })]]);
  const moved = planClaims({ services: sticky, pool, claims: new Map([["a", poolBackendName(TCP, 10400)]]), captured: new Map([[entryId({ ip: "10.96.0.1", port: 80 }), 10400]]) });
  assert.deepEqual([...moved.claims], [["a", poolBackendName(STICKY, 10401)]]);
});

test("IPv6 ClusterIPs match the kernel's canonical text", () => {
  const pool: PoolBackend[] = [10400, 10401].map((port) => ({ name: poolBackendName(TCP, port), group: TCP, listenPort: port }));
  const services = new Map([["a", svc("a", "FD00:0:0::A")]]);
  const result = planClaims({ services, pool, claims: new Map(), captured: new Map([["fd00::a 80", 10401]]) });
  assert.deepEqual([...result.claims], [["a", poolBackendName(TCP, 10401)]]);
});

test("a fresh pool renders one listen section per backend, its listeners per family, claimants' endpoints in slots", () => {
  const backends = freshPool([svc("shop:web:http", "10.96.0.1")], { firstPort: 10400, families: ["ipv4", "ipv6"], minSlots: 2, defaultGroup: TCP });
  assert.equal(backends.length, poolTarget(1));
  const text = renderPoolConfig(backends.slice(0, 2).map((b) => layoutBackend(b)), { runtimeSocket: "/tmp/rt.sock" });
  assert.match(text, /\nlisten pool:tcp:roundrobin:0:10400\n  bind 0\.0\.0\.0:10400\n  bind \[::\]:10400 v6only\n  mode tcp\n  balance roundrobin\n  server s1 10\.0\.0\.1:8080\n  server-template s 2-4 0\.0\.0\.0:0 disabled\n/);
  assert.match(text, /\nlisten pool:tcp:roundrobin:0:10401\n  bind 0\.0\.0\.0:10401\n  bind \[::\]:10401 v6only\n  mode tcp\n  balance roundrobin\n  server-template s 1-2 0\.0\.0\.0:0 disabled\n/);
  assert.doesNotMatch(text, /frontend|backend /);
});

test("mesh: a Service port's NodePort is one more element of its claim, and recovers the claim after a restart", () => {
  const pool = sizePool([], [], TCP, 10400);
  const web = svc("web", "10.96.0.1", { nodePort: 30080 });
  assert.deepEqual(entriesOf(web, 10403), [{ ip: "10.96.0.1", port: 80, listenPort: 10403 }, { port: 30080, listenPort: 10403 }]);
  // Only the NodePort element survived in the kernel (its ClusterIP changed meanwhile): the claim follows it.
  const captured = new Map([[entryId({ port: 30080 }), 10405]]);
  const { claims } = planClaims({ services: new Map([["web", svc("web", "10.96.0.9", { nodePort: 30080 })]]), pool, claims: new Map(), captured });
  assert.equal(claims.get("web"), poolBackendName(TCP, 10405));
  assert.notEqual(entryId({ port: 30080 }), entryId({ ip: "10.96.0.1", port: 30080 }));
});
