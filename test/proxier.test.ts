// The proxier between watch events and the data plane: endpoint-only changes flow straight
// through, structure changes re-resolve port conflicts, conflict losers never reach the data
// plane, counts stay right, and each skip is reported once while it lasts.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import type { Skip } from "../src/kube/translate.ts";
import { silentLogger } from "../src/log.ts";
import type { Backend } from "../src/model.ts";
import { Proxier } from "../src/proxier.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";

function setup() {
  const calls: string[] = [];
  const sink = {
    setBackend: (backend: Backend) => calls.push(`set ${backend.name} ${backend.endpoints.map((e) => `${e.ip}/${e.state}`).join(",")}`),
    deleteBackend: (name: string) => calls.push(`delete ${name}`),
  };
  const proxier = new Proxier(sink, { bindAddress: "127.0.0.1", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4 }, silentLogger);
  const counts: { services: number; ready: number; drain: number }[] = [];
  const skipped: Skip[] = [];
  proxier.on("counts", (c) => counts.push(c));
  proxier.on("skipped", (skip) => skipped.push(skip));
  return { proxier, calls, counts, skipped };
}

const old = (s: { metadata?: { creationTimestamp?: Date } }) => (s.metadata!.creationTimestamp = new Date("2024-01-01T00:00:00Z"));
const young = (s: { metadata?: { creationTimestamp?: Date } }) => (s.metadata!.creationTimestamp = new Date("2025-01-01T00:00:00Z"));

test("nothing reaches the data plane before start(); then everything once", () => {
  const { proxier, calls } = setup();
  proxier.onService("add", makeService("default", "web", [{ port: 8080 }]));
  proxier.onEndpointSlice("add", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.1" }], [{ port: 80 }]));
  assert.deepEqual(calls, []);
  proxier.start();
  assert.deepEqual(calls, ["set default:web:8080 10.0.0.1/ready"]);
});

test("endpoint changes go straight through; structure changes and deletions too", () => {
  const { proxier, calls, counts } = setup();
  proxier.start();
  proxier.onService("add", makeService("default", "web", [{ port: 8080 }]));
  assert.equal(calls.at(-1), "set default:web:8080 ");
  proxier.onEndpointSlice("add", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.1" }, { ip: "10.0.0.2", ready: false, serving: true, terminating: true }], [{ port: 80 }]));
  assert.equal(calls.at(-1), "set default:web:8080 10.0.0.1/ready,10.0.0.2/drain");
  assert.deepEqual(counts.at(-1), { services: 1, ready: 1, drain: 1 });
  proxier.onService("update", makeService("default", "web", [{ port: 8080 }], (s) => (s.metadata!.annotations!["kube-haproxy.io/algorithm"] = "leastconn")));
  assert.equal(proxier.backends()[0]!.algorithm, "leastconn");
  proxier.onService("delete", makeService("default", "web", [{ port: 8080 }]));
  assert.equal(calls.at(-1), "delete default:web:8080");
  assert.deepEqual(counts.at(-1), { services: 0, ready: 0, drain: 0 });
});

test("a port conflict is reported once while it lasts, whatever else changes (issue 9, bug 5)", () => {
  const { proxier, skipped } = setup();
  proxier.onService("add", makeService("a", "first", [{ port: 8080 }], old));
  proxier.onService("add", makeService("b", "second", [{ port: 8080 }, { name: "other", port: 9090 }], young));
  proxier.start();
  const conflicts = (): number => skipped.filter((skip) => skip.reason === "port-conflict").length;
  assert.equal(conflicts(), 1);
  // The loser's own slices change, and its structure changes (a port added); other Services come and go.
  proxier.onEndpointSlice("add", makeSlice("b", "second", "s-1", [{ ip: "10.0.0.8" }], [{ port: 80 }]));
  proxier.onService("update", makeService("b", "second", [{ port: 8080 }, { name: "other", port: 9091 }], young));
  for (let i = 0; i < 3; i++) {
    proxier.onService("add", makeService("c", `third-${i}`, [{ port: 7000 + i }]));
    proxier.onEndpointSlice("add", makeSlice("b", "second", "s-1", [{ ip: `10.0.0.${10 + i}` }], [{ port: 80 }]));
  }
  assert.equal(conflicts(), 1, skipped.map((s) => s.message).join("\n"));
  // Gone and back: a new conflict, reported again.
  proxier.onService("delete", makeService("b", "second", [{ port: 8080 }], young));
  proxier.onService("add", makeService("b", "second", [{ port: 8080 }], young));
  assert.equal(conflicts(), 2);
});

test("a port conflict: the younger Service never reaches the engine, and takes over when the older goes", () => {
  const { proxier, calls } = setup();
  proxier.onService("add", makeService("a", "first", [{ port: 8080 }], old));
  proxier.onService("add", makeService("b", "second", [{ port: 8080 }], young));
  proxier.onEndpointSlice("add", makeSlice("b", "second", "s-1", [{ ip: "10.0.0.9" }], [{ port: 80 }]));
  proxier.start();
  assert.deepEqual(calls, ["set a:first:8080 "]);
  proxier.onEndpointSlice("update", makeSlice("b", "second", "s-1", [{ ip: "10.0.0.8" }], [{ port: 80 }]));
  assert.deepEqual(calls, ["set a:first:8080 "], "the loser's endpoints stay out");
  proxier.onService("delete", makeService("a", "first", [{ port: 8080 }], old));
  assert.deepEqual(calls.slice(1), ["delete a:first:8080", "set b:second:8080 10.0.0.8/ready"]);
  assert.deepEqual(proxier.backends().map((b) => b.name), ["b:second:8080"]);
});

test("what a Service alone decides is read again whenever the Service changes, even as the same object edited", () => {
  const { proxier } = setup();
  proxier.start();
  const service = makeService("default", "web", [{ port: 8080 }]);
  proxier.onService("add", service);
  proxier.onEndpointSlice("add", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.1" }], [{ port: 80 }]));
  service.metadata!.annotations!["kube-haproxy.io/algorithm"] = "leastconn";
  proxier.onService("update", service);
  // A slice change afterwards (the path that reuses the prepared Service) keeps the new setting.
  proxier.onEndpointSlice("update", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.2" }], [{ port: 80 }]));
  assert.equal(proxier.backends()[0]!.algorithm, "leastconn");
  assert.deepEqual(proxier.backends()[0]!.endpoints.map((e) => e.ip), ["10.0.0.2"]);
});
