// The proxier between watch events and the engine: endpoint-only changes flow straight through,
// structural ones are announced, conflict losers never reach the engine, counts stay right.

import assert from "node:assert/strict";
import { test } from "node:test";
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
  const proxier = new Proxier(sink, { proxyMode: "onlyfetch", bindAddress: "127.0.0.1", algorithm: "roundrobin", minSlots: 4 }, silentLogger);
  const structural: string[] = [];
  const counts: { services: number; ready: number; drain: number }[] = [];
  proxier.on("structural", (reason) => structural.push(reason));
  proxier.on("counts", (c) => counts.push(c));
  return { proxier, calls, structural, counts };
}

const old = (s: { metadata?: { creationTimestamp?: Date } }) => (s.metadata!.creationTimestamp = new Date("2024-01-01T00:00:00Z"));
const young = (s: { metadata?: { creationTimestamp?: Date } }) => (s.metadata!.creationTimestamp = new Date("2025-01-01T00:00:00Z"));

test("nothing reaches the engine before start(); then everything once, without a structural event", () => {
  const { proxier, calls, structural } = setup();
  proxier.onService("add", makeService("default", "web", [{ port: 8080 }]));
  proxier.onEndpointSlice("add", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.1" }], [{ port: 80 }]));
  assert.deepEqual(calls, []);
  proxier.start();
  assert.deepEqual(calls, ["set default:web:8080 10.0.0.1/ready"]);
  assert.deepEqual(structural, [], "whether HAProxy has it is the reloader's question");
});

test("endpoint changes go straight through; structure changes are announced", () => {
  const { proxier, calls, structural, counts } = setup();
  proxier.start();
  proxier.onService("add", makeService("default", "web", [{ port: 8080 }]));
  assert.deepEqual(structural, ["default/web:8080 added"]);
  proxier.onEndpointSlice("add", makeSlice("default", "web", "web-1", [{ ip: "10.0.0.1" }, { ip: "10.0.0.2", ready: false, serving: true, terminating: true }], [{ port: 80 }]));
  assert.equal(calls.at(-1), "set default:web:8080 10.0.0.1/ready,10.0.0.2/drain");
  assert.equal(structural.length, 1, "endpoints are not structure");
  assert.deepEqual(counts.at(-1), { services: 1, ready: 1, drain: 1 });
  proxier.onService("update", makeService("default", "web", [{ port: 8080 }], (s) => (s.metadata!.annotations!["kube-haproxy.io/algorithm"] = "leastconn")));
  assert.deepEqual(structural.at(-1), "default/web:8080 changed");
  const checked = (s: { metadata?: { annotations?: Record<string, string> } }): void =>
    void Object.assign(s.metadata!.annotations!, { "kube-haproxy.io/algorithm": "leastconn", "kube-haproxy.io/health-check": "true" });
  proxier.onService("update", makeService("default", "web", [{ port: 8080 }], checked));
  assert.deepEqual(structural.slice(2), ["default/web:8080 changed"], "a health check is structure");
  proxier.onService("delete", makeService("default", "web", [{ port: 8080 }]));
  assert.equal(calls.at(-1), "delete default:web:8080");
  assert.deepEqual(structural.at(-1), "default/web:8080 removed");
  assert.deepEqual(counts.at(-1), { services: 0, ready: 0, drain: 0 });
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
