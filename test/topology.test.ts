// Topology hints, kube-proxy's rules (pkg/proxy/topology.go): the pure decision as a table, and
// through translateService in local mode (onlyfetch and internalTrafficPolicy Local ignore hints).

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Endpoint, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { availableForTopology, hintsOf, topologyMode, type HintedEndpoint, type NodeTopology } from "../src/kube/topology.ts";
import { translateService, type TranslateOptions } from "../src/kube/translate.ts";

const NODE: NodeTopology = { nodeName: "node-a", zone: "zone-a" };

function ep(ready: boolean, forZones: string[] = [], forNodes: string[] = []): HintedEndpoint {
  return { ready, forZones, forNodes };
}

test("topologyMode and availableForTopology: kube-proxy's table", () => {
  const cases: { name: string; endpoints: HintedEndpoint[]; node?: NodeTopology; mode: string; kept: boolean[] }[] = [
    { name: "no hints", endpoints: [ep(true), ep(true)], mode: "", kept: [true, true] },
    { name: "zone hints, one for this zone", endpoints: [ep(true, ["zone-a"]), ep(true, ["zone-b"])], mode: "PreferSameZone", kept: [true, false] },
    { name: "an endpoint hinted for several zones", endpoints: [ep(true, ["zone-b", "zone-a"]), ep(true, ["zone-b"])], mode: "PreferSameZone", kept: [true, false] },
    { name: "one ready endpoint without hints: all", endpoints: [ep(true, ["zone-a"]), ep(true)], mode: "", kept: [true, true] },
    { name: "a not-ready endpoint without hints does not count", endpoints: [ep(true, ["zone-a"]), ep(false), ep(true, ["zone-b"])], mode: "PreferSameZone", kept: [true, false, false] },
    { name: "no hint for this zone: all", endpoints: [ep(true, ["zone-b"]), ep(true, ["zone-c"])], mode: "", kept: [true, true] },
    { name: "the node has no zone label: all", endpoints: [ep(true, ["zone-a"]), ep(true, ["zone-b"])], node: { nodeName: "node-a" }, mode: "", kept: [true, true] },
    { name: "no ready endpoint: no topology", endpoints: [ep(false, ["zone-b"]), ep(false, ["zone-a"])], mode: "", kept: [true, true] },
    { name: "node hints, one for this node", endpoints: [ep(true, ["zone-a"], ["node-a"]), ep(true, ["zone-a"], ["node-b"])], mode: "PreferSameNode", kept: [true, false] },
    { name: "node hints, none for this node: zone hints decide", endpoints: [ep(true, ["zone-a"], ["node-b"]), ep(true, ["zone-b"], ["node-c"])], mode: "PreferSameZone", kept: [true, false] },
    { name: "node hints on some only: zone hints decide", endpoints: [ep(true, ["zone-a"], ["node-a"]), ep(true, ["zone-a"]), ep(true, ["zone-b"])], mode: "PreferSameZone", kept: [true, true, false] },
  ];
  for (const { name, endpoints, node = NODE, mode, kept } of cases) {
    const got = topologyMode(endpoints, node);
    assert.equal(got, mode, name);
    assert.deepEqual(endpoints.map((endpoint) => availableForTopology(endpoint, got, node)), kept, name);
  }
});

test("hintsOf: names from forZones/forNodes; malformed hints count as none", () => {
  assert.deepEqual(hintsOf({ forZones: [{ name: "zone-a" }, { name: "zone-b" }], forNodes: [{ name: "node-a" }] }), { forZones: ["zone-a", "zone-b"], forNodes: ["node-a"] });
  assert.deepEqual(hintsOf(undefined), { forZones: [], forNodes: [] });
  assert.deepEqual(hintsOf({ forZones: [{ name: "" }, {}, { name: 7 }] }), { forZones: [], forNodes: [] });
  assert.deepEqual(hintsOf({ forZones: "zone-a" } as never), { forZones: [], forNodes: [] });
});

const OPTIONS: TranslateOptions = { bindAddress: "0.0.0.0", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4 };

function service(patch: (spec: NonNullable<V1Service["spec"]>) => void = () => {}): V1Service {
  const svc: V1Service = {
    metadata: { namespace: "shop", name: "web", creationTimestamp: new Date("2024-01-01T00:00:00Z"), labels: { "kube-haproxy.io/expose": "true" } },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.20", clusterIPs: ["10.96.0.20"], trafficDistribution: "PreferClose", ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
  patch(svc.spec!);
  return svc;
}

function endpoint(ip: string, zone: string | undefined, conditions: V1Endpoint["conditions"] = { ready: true }, nodeName?: string): V1Endpoint {
  return { addresses: [ip], conditions, ...(zone ? { hints: { forZones: [{ name: zone }] } } : {}), ...(nodeName ? { nodeName } : {}) };
}

function slice(endpoints: V1Endpoint[]): V1EndpointSlice {
  return { addressType: "IPv4", metadata: { namespace: "shop", name: "web-1", labels: { "kubernetes.io/service-name": "web" } }, endpoints, ports: [{ name: "http", port: 8080, protocol: "TCP" }] };
}

function served(svc: V1Service, endpoints: V1Endpoint[], options: TranslateOptions): string[] {
  const [backend] = translateService(svc, [slice(endpoints)], options).backends;
  return (backend?.endpoints ?? []).map((e) => `${e.ip} ${e.state}`);
}

test("translate, local mode: same-zone endpoints only; serving-terminating ones still drain; the fallbacks", () => {
  const local = { ...OPTIONS, local: NODE };
  const hinted = [endpoint("10.0.0.1", "zone-a"), endpoint("10.0.0.2", "zone-b"), endpoint("10.0.0.3", "zone-b", { ready: false, serving: true, terminating: true })];
  assert.deepEqual(served(service(), hinted, local), ["10.0.0.1 ready", "10.0.0.3 drain"]);
  assert.deepEqual(served(service(), [endpoint("10.0.0.1", "zone-a"), endpoint("10.0.0.2", undefined)], local), ["10.0.0.1 ready", "10.0.0.2 ready"], "one without hints");
  assert.deepEqual(served(service(), hinted, { ...OPTIONS, local: { nodeName: "node-a", zone: "zone-c" } }), ["10.0.0.1 ready", "10.0.0.2 ready", "10.0.0.3 drain"], "no hint for this zone");
  assert.deepEqual(served(service(), hinted, { ...OPTIONS, local: { nodeName: "node-a" } }), ["10.0.0.1 ready", "10.0.0.2 ready", "10.0.0.3 drain"], "a node without a zone");
});

test("translate: onlyfetch and internalTrafficPolicy Local ignore hints", () => {
  const hinted = [endpoint("10.0.0.1", "zone-a", { ready: true }, "node-b"), endpoint("10.0.0.2", "zone-b", { ready: true }, "node-a")];
  assert.deepEqual(served(service(), hinted, OPTIONS), ["10.0.0.1 ready", "10.0.0.2 ready"], "onlyfetch");
  const itpLocal = service((spec) => (spec.internalTrafficPolicy = "Local"));
  assert.deepEqual(served(itpLocal, hinted, { ...OPTIONS, local: NODE }), ["10.0.0.2 ready"], "this node's endpoint, though hinted for zone-b");
});
