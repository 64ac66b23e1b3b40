// Pruning at the door (src/kube/objects.ts): the fields translation, mesh and topology read are
// kept with the API's names and shapes; everything else is dropped; odd shapes pass through.

import assert from "node:assert/strict";
import { test } from "node:test";
import { pruneEndpointSlice, pruneService } from "../src/kube/objects.ts";

const managedFields = [{ manager: "kube-controller-manager", operation: "Update", fieldsV1: { "f:metadata": {} } }];

test("a Service keeps its metadata, spec and load balancer fields, nothing else", () => {
  const kept = {
    metadata: { namespace: "shop", name: "web", uid: "u-1", resourceVersion: "42", labels: { app: "web" }, annotations: { a: "b" }, creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: {
      type: "LoadBalancer", clusterIP: "10.96.0.7", clusterIPs: ["10.96.0.7", "fd00::7"], ipFamilies: ["IPv4", "IPv6"],
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080, appProtocol: "http" }],
      sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, externalIPs: ["192.0.2.1"],
      externalTrafficPolicy: "Local", internalTrafficPolicy: "Cluster", healthCheckNodePort: 31000, trafficDistribution: "PreferClose",
      loadBalancerSourceRanges: ["0.0.0.0/0"], publishNotReadyAddresses: false,
    },
    status: { loadBalancer: { ingress: [{ ip: "198.18.0.1", ipMode: "VIP", hostname: "lb.example" }] } },
  };
  const full = {
    apiVersion: "v1", kind: "Service",
    metadata: { ...kept.metadata, managedFields, generation: 3, ownerReferences: [] },
    spec: { ...kept.spec, selector: { app: "web" }, ipFamilyPolicy: "PreferDualStack", allocateLoadBalancerNodePorts: true, ports: [{ ...kept.spec.ports[0], extra: 1 }] },
    status: { loadBalancer: { ingress: [{ ...kept.status.loadBalancer.ingress[0], ports: [{ port: 80 }] }] }, conditions: [] },
  };
  assert.deepEqual(pruneService(full), kept);
});

test("an EndpointSlice keeps its ports and endpoints' addresses, conditions, node, zone and hints", () => {
  const endpoint = { addresses: ["10.0.0.1"], conditions: { ready: true, serving: true, terminating: false }, nodeName: "n1", zone: "z1", hints: { forZones: [{ name: "z1" }], forNodes: [{ name: "n1" }] } };
  const kept = {
    metadata: { namespace: "shop", name: "web-abc", resourceVersion: "43", labels: { "kubernetes.io/service-name": "web" }, annotations: {}, creationTimestamp: "2026-01-01T00:00:00Z" },
    addressType: "IPv4",
    ports: [{ name: "http", protocol: "TCP", port: 8080, appProtocol: "http" }],
    endpoints: [endpoint],
  };
  const full = {
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
    metadata: { ...kept.metadata, managedFields, uid: "u-2", generation: 9 },
    addressType: "IPv4",
    ports: kept.ports,
    endpoints: [{ ...endpoint, targetRef: { kind: "Pod", name: "web-1" }, hostname: "web-1", deprecatedTopology: { a: "b" } }],
  };
  assert.deepEqual(pruneEndpointSlice(full), kept);
});

test("values of another shape than the API's pass through for translation to judge", () => {
  assert.deepEqual(pruneService({ metadata: { name: "x" }, spec: { ports: "80" } }), { metadata: { name: "x" }, spec: { ports: "80" } });
  assert.deepEqual(pruneEndpointSlice({ addressType: "IPv4", endpoints: [null, 7] }), { addressType: "IPv4", endpoints: [null, 7] });
  assert.equal(pruneService(null), null);
});

test("equal node names, zones and conditions are kept once, frozen; annotations lose kubectl's last-applied copy only", () => {
  const raw = (ready: boolean) => ({
    metadata: { name: "s", annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{…}", "endpoints.kubernetes.io/last-change-trigger-time": "t" } },
    endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready, serving: true }, nodeName: `node-with-a-long-name-${"x".repeat(20)}`, zone: "eu-west-1a" }],
  });
  const [a, b, c] = [pruneEndpointSlice(JSON.parse(JSON.stringify(raw(true)))), pruneEndpointSlice(JSON.parse(JSON.stringify(raw(true)))), pruneEndpointSlice(JSON.parse(JSON.stringify(raw(false))))];
  const [ea, eb, ec] = [a.endpoints![0]!, b.endpoints![0]!, c.endpoints![0]!];
  assert.equal(ea.conditions, eb.conditions);
  assert.notEqual(ea.conditions, ec.conditions);
  assert.deepEqual(ec.conditions, { ready: false, serving: true });
  assert.ok(Object.isFrozen(ea.conditions));
  assert.deepEqual(a.metadata?.annotations, { "endpoints.kubernetes.io/last-change-trigger-time": "t" });
  // A value of another shape is kept as it came, for translation to report.
  const odd = pruneEndpointSlice({ endpoints: [{ conditions: { ready: "yes" }, nodeName: 7 }] });
  assert.deepEqual(odd.endpoints, [{ conditions: { ready: "yes" }, nodeName: 7 }]);
  assert.ok(!Object.isFrozen(odd.endpoints![0]!.conditions));
});
