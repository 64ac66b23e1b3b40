// Mesh mode: two Services naming the same external destination (an externalIP or load balancer
// IP and port, or a NodePort). The older one keeps it, the younger loses that destination only
// (its ClusterIP and its other destinations stay), logged and counted once while it lasts, and
// takes it over when the older one goes. Pure: the proxier with a recording sink and the metrics
// registry the sidecar uses.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Service, V1ServicePort } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { silentLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import type { Backend } from "../src/model.ts";
import { Proxier } from "../src/proxier.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";

const MESH = { bindAddress: "0.0.0.0", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4, local: { nodeName: "node-a" }, mesh: true };

function setup() {
  const sink = new Map<string, Backend>();
  const proxier = new Proxier({ setBackend: (b) => sink.set(b.name, b), deleteBackend: (name) => sink.delete(name) }, MESH, silentLogger);
  const metrics = createMetrics();
  proxier.on("skipped", (skip) => metrics.skipped.inc({ reason: skip.reason })); // as observe.ts wires it
  const conflicts = (): string => /kube_haproxy_skipped_total\{reason="port-conflict"\} (\d+)/.exec(metrics.render())?.[1] ?? "0";
  /** Each backend's destinations as the data plane gets them. */
  const destinations = () =>
    Object.fromEntries([...sink.values()].map((b) => [b.name, [...b.binds.map((x) => `${x.address}:${x.port}`), ...(b.nodePort ? [`NodePort ${b.nodePort}`] : [])]]));
  return { proxier, conflicts, destinations, sink };
}

function service(name: string, clusterIP: string, created: string, patch: (s: V1Service) => void): V1Service {
  const ports: V1ServicePort[] = [{ name: "http", port: 80, nodePort: 30080 }];
  return makeService("default", name, ports, (s) => {
    s.metadata!.creationTimestamp = new Date(created);
    s.spec!.type = "LoadBalancer";
    s.spec!.clusterIP = clusterIP;
    s.spec!.clusterIPs = [clusterIP];
    patch(s);
  });
}

const OLD = service("old", "10.96.0.1", "2024-01-01T00:00:00Z", (s) => {
  s.spec!.externalIPs = ["198.18.200.1"];
  s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }] } };
});
/** Names old's externalIP as its load balancer IP, old's NodePort, and one externalIP of its own. */
const YOUNG = service("young", "10.96.0.2", "2025-01-01T00:00:00Z", (s) => {
  s.spec!.externalIPs = ["198.18.200.2"];
  s.status = { loadBalancer: { ingress: [{ ip: "198.18.200.1" }] } };
});

test("mesh: the older Service keeps a shared external IP and NodePort; the younger keeps the rest, counted once while it lasts", () => {
  const { proxier, conflicts, destinations } = setup();
  proxier.onService("add", YOUNG);
  proxier.onService("add", OLD);
  proxier.start();
  assert.deepEqual(destinations(), {
    "default:old:http": ["10.96.0.1:80", "198.18.200.1:80", "198.18.201.1:80", "NodePort 30080"],
    "default:young:http": ["10.96.0.2:80", "198.18.200.2:80"],
  });
  assert.equal(conflicts(), "2", "one for the address, one for the NodePort");

  // Endpoint changes take the hot path and never bring a lost destination back; nothing is counted again.
  for (let i = 1; i <= 3; i++) {
    proxier.onEndpointSlice("add", makeSlice("default", "young", "young-1", [{ ip: `10.0.0.${i}` }], [{ name: "http", port: 8080 }]));
    proxier.onService("update", { ...YOUNG, metadata: { ...YOUNG.metadata, resourceVersion: String(i) } });
  }
  assert.deepEqual(destinations()["default:young:http"], ["10.96.0.2:80", "198.18.200.2:80"]);
  assert.equal(conflicts(), "2");

  // The older one goes: the younger takes both over.
  proxier.onService("delete", OLD);
  assert.deepEqual(destinations(), { "default:young:http": ["10.96.0.2:80", "198.18.200.1:80", "198.18.200.2:80", "NodePort 30080"] });
  assert.equal(conflicts(), "2");
});

test("mesh: a younger Service whose only external destinations are taken keeps its ClusterIP; an eTP Local external backend with none left is dropped", () => {
  const { proxier, conflicts, destinations } = setup();
  const twin = service("twin", "10.96.0.3", "2025-06-01T00:00:00Z", (s) => {
    s.spec!.externalTrafficPolicy = "Local";
    s.spec!.externalIPs = ["198.18.200.1"];
  });
  proxier.onService("add", OLD);
  proxier.onService("add", twin);
  proxier.start();
  assert.deepEqual(destinations(), {
    "default:old:http": ["10.96.0.1:80", "198.18.200.1:80", "198.18.201.1:80", "NodePort 30080"],
    "default:twin:http": ["10.96.0.3:80"],
  });
  assert.equal(conflicts(), "2");
  // Same age: namespace/name decides, whatever order the events came in.
  const again = setup();
  const sameAge = { ...twin, metadata: { ...twin.metadata, creationTimestamp: OLD.metadata!.creationTimestamp } };
  again.proxier.onService("add", sameAge);
  again.proxier.onService("add", OLD);
  again.proxier.start();
  assert.deepEqual(again.destinations()["default:old:http"], ["10.96.0.1:80", "198.18.200.1:80", "198.18.201.1:80", "NodePort 30080"]);
});
