// Local mode's translation: every TCP Service port with a ClusterIP, at each of its ClusterIPs;
// internalTrafficPolicy Local keeps this node's endpoints only, never falling back.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Endpoint, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { translateService, type TranslateOptions } from "../src/kube/translate.ts";
import { ready } from "./helpers.ts";

const LOCAL: TranslateOptions = {
  bindAddress: "0.0.0.0",
  algorithm: "roundrobin",
  algorithms: ALGORITHMS,
  minSlots: 4,
  onlyLabelled: true, // onlyfetch's exposure: must not apply in local mode
  reservedPorts: new Set([22, 6443]),
  local: { nodeName: "node-a" },
};

function service(ns: string, name: string, patch: (spec: NonNullable<V1Service["spec"]>) => void = () => {}): V1Service {
  const svc: V1Service = {
    metadata: { namespace: ns, name, creationTimestamp: new Date("2024-01-01T00:00:00Z") },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.20", clusterIPs: ["10.96.0.20"], ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
  patch(svc.spec!);
  return svc;
}

function endpoint(ip: string, nodeName?: string): V1Endpoint {
  return { addresses: [ip], conditions: { ready: true }, ...(nodeName ? { nodeName } : {}) };
}

function slice(ns: string, svc: string, endpoints: V1Endpoint[], addressType = "IPv4", port = 8080): V1EndpointSlice {
  return {
    addressType,
    metadata: { namespace: ns, name: `${svc}-${addressType}`, labels: { "kubernetes.io/service-name": svc } },
    endpoints,
    ports: [{ name: "http", port, protocol: "TCP" }],
  };
}

test("local: binds are the ClusterIPs (one backend per family) at the Service port; exposure and reserved ports do not apply", () => {
  const svc = service("shop", "web", (spec) => {
    spec.clusterIPs = ["10.96.0.20", "fd00::20"];
    spec.ports = [{ name: "http", port: 6443, protocol: "TCP" }];
  });
  const { backends, skipped } = translateService(svc, [slice("shop", "web", [endpoint("10.0.0.1")])], LOCAL);
  assert.deepEqual(skipped, []);
  assert.deepEqual(backends.map((b) => [b.name, b.binds, b.endpoints, b.noEndpointVerdict]), [
    ["shop:web:http", [{ address: "10.96.0.20", port: 6443 }], [ready("10.0.0.1", 8080)], undefined],
    ["shop:web:http:ipv6", [{ address: "fd00::20", port: 6443 }], [], undefined], // no IPv6 endpoint anywhere: rejected
  ]);
});

test("local: what is served and what is skipped, with reasons", () => {
  const cases: { name: string; svc: V1Service; served: string[]; reasons: string[] }[] = [
    { name: "default/kubernetes is served (onlyfetch leaves it)", svc: service("default", "kubernetes", (s) => (s.ports = [{ name: "https", port: 443 }])), served: ["default:kubernetes:https"], reasons: [] },
    {
      name: "kube-dns: the TCP port served, the UDP port skipped",
      svc: service("kube-system", "kube-dns", (s) => (s.ports = [{ name: "dns", port: 53, protocol: "UDP" }, { name: "dns-tcp", port: 53, protocol: "TCP" }])),
      served: ["kube-system:kube-dns:dns-tcp"],
      reasons: ["udp"],
    },
    { name: "headless", svc: service("a", "h", (s) => { s.clusterIP = "None"; s.clusterIPs = ["None"]; }), served: [], reasons: ["headless"] },
    { name: "no ClusterIP at all", svc: service("a", "n", (s) => { delete s.clusterIP; delete s.clusterIPs; }), served: [], reasons: ["no-cluster-ip"] },
    { name: "only clusterIP (an older API server)", svc: service("a", "o", (s) => delete s.clusterIPs), served: ["a:o:http"], reasons: [] },
    { name: "SCTP", svc: service("a", "s", (s) => (s.ports = [{ name: "x", port: 9, protocol: "SCTP" }])), served: [], reasons: ["sctp"] },
  ];
  for (const c of cases) {
    const t = translateService(c.svc, [], LOCAL);
    assert.deepEqual(t.backends.map((b) => b.name), c.served, c.name);
    assert.deepEqual(t.skipped.map((s) => s.reason), c.reasons, c.name);
  }
});

test("local: internalTrafficPolicy Local keeps this node's endpoints; none means no servers, never other nodes'", () => {
  const slices = [slice("shop", "web", [endpoint("10.0.0.1", "node-a"), endpoint("10.0.0.2", "node-b"), endpoint("10.0.0.3")])];
  const cases: { name: string; policy?: string; node: string; want: string[] }[] = [
    { name: "Cluster: every endpoint", policy: "Cluster", node: "node-a", want: ["10.0.0.1", "10.0.0.2", "10.0.0.3"] },
    { name: "unset: every endpoint", node: "node-a", want: ["10.0.0.1", "10.0.0.2", "10.0.0.3"] },
    { name: "Local on node-a: its own", policy: "Local", node: "node-a", want: ["10.0.0.1"] },
    { name: "Local on node-b: its own", policy: "Local", node: "node-b", want: ["10.0.0.2"] },
    { name: "Local on a node without endpoints: none", policy: "Local", node: "node-c", want: [] },
  ];
  for (const c of cases) {
    const svc = service("shop", "web", (spec) => { if (c.policy) spec.internalTrafficPolicy = c.policy; });
    const { backends } = translateService(svc, slices, { ...LOCAL, local: { nodeName: c.node } });
    assert.deepEqual(backends[0]!.endpoints.map((e) => e.ip), c.want, c.name);
  }
});

test("onlyfetch ignores internalTrafficPolicy and still leaves the cluster Services", () => {
  const { local: _, ...onlyfetch } = LOCAL;
  const svc = service("shop", "web", (spec) => (spec.internalTrafficPolicy = "Local"));
  const labelled = { ...svc, metadata: { ...svc.metadata, labels: { "kube-haproxy.io/expose": "true" } } };
  const t = translateService(labelled, [slice("shop", "web", [endpoint("10.0.0.1", "node-b")])], onlyfetch);
  assert.deepEqual(t.backends[0]!.endpoints.map((e) => e.ip), ["10.0.0.1"]);
  assert.deepEqual(t.backends[0]!.binds, [{ address: "0.0.0.0", port: 80 }]);
  assert.deepEqual(translateService(service("default", "kubernetes"), [], onlyfetch).skipped.map((s) => s.reason), ["not-exposed"]);
});
