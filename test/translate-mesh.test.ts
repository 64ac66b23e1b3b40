// Mesh mode's translation (pure): externalIPs, load balancer ingress IPs and NodePorts join the
// Service port's destinations; externalTrafficPolicy Local gives external traffic a second
// backend with this node's endpoints only; the health check node port's count is kube-proxy's.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Endpoint, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { healthAnswer } from "../src/health-check-node-port.ts";
import { translateService, type TranslateOptions } from "../src/kube/translate.ts";
import { ready } from "./helpers.ts";

const MESH: TranslateOptions = {
  bindAddress: "0.0.0.0",
  algorithm: "roundrobin",
  algorithms: ALGORITHMS,
  minSlots: 4,
  local: { nodeName: "node-a" },
  mesh: true,
};
const LOCAL: TranslateOptions = { ...MESH, mesh: false };

function service(patch: (svc: V1Service) => void = () => {}): V1Service {
  const svc: V1Service = {
    metadata: { namespace: "shop", name: "web", creationTimestamp: new Date("2024-01-01T00:00:00Z") },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.20", clusterIPs: ["10.96.0.20"], ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
  patch(svc);
  return svc;
}

function endpoint(ip: string, nodeName: string, ready = true): V1Endpoint {
  return { addresses: [ip], conditions: { ready, serving: true, terminating: !ready }, nodeName };
}

function slice(endpoints: V1Endpoint[], ports = [{ name: "http", port: 8080, protocol: "TCP" }]): V1EndpointSlice {
  return { addressType: "IPv4", metadata: { namespace: "shop", name: "web-1", labels: { "kubernetes.io/service-name": "web" } }, endpoints, ports };
}

const BOTH = slice([endpoint("10.0.0.1", "node-a"), endpoint("10.0.0.2", "node-b")]);

function summary(svc: V1Service, slices: V1EndpointSlice[] = [BOTH], options = MESH) {
  const { backends, skipped, healthCheckNodePort } = translateService(svc, slices, options);
  return {
    backends: backends.map((b) => ({ name: b.name, binds: b.binds.map((x) => `${x.address}:${x.port}`), nodePort: b.nodePort, endpoints: b.endpoints.map((e) => e.ip) })),
    skipped: skipped.map((s) => s.message),
    healthCheckNodePort,
  };
}

test("mesh, externalTrafficPolicy Cluster: externalIPs, load balancer IPs and the NodePort join the one backend", () => {
  const svc = service((s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalIPs = ["198.18.200.1"];
    s.spec!.ports = [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }];
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }, { ip: "198.18.201.2", ipMode: "Proxy" }, { hostname: "lb.example" }] } };
  });
  assert.deepEqual(summary(svc), {
    backends: [{ name: "shop:web:http", binds: ["10.96.0.20:80", "198.18.200.1:80", "198.18.201.1:80"], nodePort: 30080, endpoints: ["10.0.0.1", "10.0.0.2"] }],
    skipped: [],
    healthCheckNodePort: undefined,
  });
});

test("mesh, externalTrafficPolicy Local: ClusterIP traffic to every endpoint, external traffic to this node's only", () => {
  const svc = service((s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalTrafficPolicy = "Local";
    s.spec!.healthCheckNodePort = 32000;
    s.spec!.ports = [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }];
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }] } };
  });
  assert.deepEqual(summary(svc), {
    backends: [
      { name: "shop:web:http", binds: ["10.96.0.20:80"], nodePort: undefined, endpoints: ["10.0.0.1", "10.0.0.2"] },
      { name: "shop:web:http:external", binds: ["198.18.201.1:80"], nodePort: 30080, endpoints: ["10.0.0.1"] },
    ],
    skipped: [],
    healthCheckNodePort: { port: 32000, localEndpoints: 1 },
  });
  // The node's own connections to the external destinations take the cluster-wide backend (kube-proxy's short circuit).
  assert.deepEqual(translateService(svc, [BOTH], MESH).backends.map((b) => b.nodeShortcut), [undefined, "shop:web:http"]);
  // No endpoint on this node: the external backend has none (kube-proxy drops), the health check says 0.
  const elsewhere = summary(svc, [slice([endpoint("10.0.0.2", "node-b")])]);
  assert.deepEqual(elsewhere.backends.map((b) => [b.name, b.endpoints]), [["shop:web:http", ["10.0.0.2"]], ["shop:web:http:external", []]]);
  assert.deepEqual(elsewhere.healthCheckNodePort, { port: 32000, localEndpoints: 0 });
});

test("health check count: ready local endpoints by distinct IP over all ports; terminating ones do not count", () => {
  const svc = service((s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalTrafficPolicy = "Local";
    s.spec!.healthCheckNodePort = 32000;
    s.spec!.ports = [{ name: "http", port: 80, nodePort: 30080 }, { name: "https", port: 443, nodePort: 30443 }];
  });
  const ports = [{ name: "http", port: 8080, protocol: "TCP" }, { name: "https", port: 8443, protocol: "TCP" }];
  const slices = [slice([endpoint("10.0.0.1", "node-a"), endpoint("10.0.0.3", "node-a", false), endpoint("10.0.0.2", "node-b")], ports)];
  assert.deepEqual(summary(svc, slices).healthCheckNodePort, { port: 32000, localEndpoints: 1 });
  // NodePort type, or eTP Cluster: no health check node port.
  assert.equal(summary(service((s) => Object.assign(s.spec!, { type: "NodePort", externalTrafficPolicy: "Local", healthCheckNodePort: 32000 }))).healthCheckNodePort, undefined);
});

test("mesh: a NodePort Service; a ClusterIP Service gets nothing external; local mode ignores all of it", () => {
  const nodePort = service((s) => {
    s.spec!.type = "NodePort";
    s.spec!.ports = [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }];
  });
  assert.deepEqual(summary(nodePort).backends, [{ name: "shop:web:http", binds: ["10.96.0.20:80"], nodePort: 30080, endpoints: ["10.0.0.1", "10.0.0.2"] }]);
  const clusterIpWithNodePort = service((s) => (s.spec!.ports = [{ name: "http", port: 80, nodePort: 30080 }]));
  assert.equal(summary(clusterIpWithNodePort).backends[0]!.nodePort, undefined);
  const external = service((s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalIPs = ["198.18.200.1"];
    s.spec!.ports = [{ name: "http", port: 80, nodePort: 30080 }];
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }] } };
  });
  assert.deepEqual(summary(external, [BOTH], LOCAL).backends, [{ name: "shop:web:http", binds: ["10.96.0.20:80"], nodePort: undefined, endpoints: ["10.0.0.1", "10.0.0.2"] }]);
});

test("mesh: an invalid externalIP is skipped with a reason, the rest served; UDP ports get nothing external", () => {
  const svc = service((s) => {
    s.spec!.externalIPs = ["not-an-ip", "198.18.200.1"];
    s.spec!.ports = [{ name: "http", port: 80 }, { name: "dns", port: 53, protocol: "UDP" }];
  });
  const { backends, skipped } = summary(svc);
  assert.deepEqual(backends.map((b) => b.binds), [["10.96.0.20:80", "198.18.200.1:80"]]);
  assert.ok(skipped.some((m) => /externalIP "not-an-ip" is not an IP address/.test(m)), JSON.stringify(skipped));
  assert.ok(skipped.some((m) => /UDP/.test(m)));
});

test("health check answer: kube-proxy's JSON, 200 with local endpoints, 503 without or when unhealthy", () => {
  const ok = healthAnswer("shop/web", 2, true);
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.body), { service: { namespace: "shop", name: "web" }, localEndpoints: 2, serviceProxyHealthy: true });
  assert.equal(ok.body, '{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');
  assert.equal(healthAnswer("shop/web", 0, true).status, 503);
  assert.equal(healthAnswer("shop/web", 1, false).status, 503);
  assert.equal(JSON.parse(healthAnswer("shop/web", 1, false).body).serviceProxyHealthy, false);
});

test("ready() helper still matches endpoints of the external backend", () => {
  const svc = service((s) => {
    s.spec!.type = "NodePort";
    s.spec!.externalTrafficPolicy = "Local";
    s.spec!.ports = [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }];
  });
  const external = translateService(svc, [BOTH], MESH).backends.find((b) => b.name.endsWith(":external"))!;
  assert.deepEqual(external.endpoints, [ready("10.0.0.1", 8080)]);
});

/** The load balancer Service of the source-range cases: an externalIP, an IPv4 and an IPv6 load balancer IP. */
function restricted(ranges: unknown[]) {
  const svc = service((s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalIPs = ["198.18.200.1"];
    s.spec!.ports = [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }];
    s.spec!.loadBalancerSourceRanges = ranges as string[];
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }, { ip: "fd00::201:1" }] } };
  });
  const { backends, skipped } = translateService(svc, [BOTH], MESH);
  return {
    // The IPv6 load balancer IP is in the backend of its family (test/translate-families.test.ts).
    ranges: Object.fromEntries(backends.flatMap((backend) => backend.binds).map((bind) => [bind.address, bind.sourceRanges ?? "any"])),
    skipped: skipped.map((s) => `${s.reason}: ${s.message}`),
  };
}

test("loadBalancerSourceRanges: only the load balancer IPs, per family, canonical, a range inside another left out", () => {
  assert.deepEqual(restricted([" 198.18.50.7/24 ", "198.18.50.128/25", "198.18.9.7/32", "10.0.0.0/8", "FD00:0::9:0/112"]), {
    ranges: {
      "10.96.0.20": "any", // the ClusterIP: never filtered (kube-proxy)
      "198.18.200.1": "any", // an externalIP: never filtered (kube-proxy)
      "198.18.201.1": ["10.0.0.0/8", "198.18.50.0/24", "198.18.9.7/32"],
      "fd00::201:1": ["fd00::9:0/112"],
    },
    skipped: [],
  });
  // No range of a family, or a zero-length prefix: any source of that family (kube-proxy).
  assert.deepEqual(restricted(["198.18.50.0/24"]).ranges["fd00::201:1"], "any");
  assert.deepEqual(restricted(["0.0.0.0/0", "198.18.50.0/24", "fd00::/8"]).ranges["198.18.201.1"], "any");
  assert.deepEqual(restricted([]).ranges["198.18.201.1"], "any");
});

test("loadBalancerSourceRanges: a bad entry is left out with a record, the others apply; none readable admits no source", () => {
  const some = restricted(["198.18.50.0/24", "not-a-cidr", "198.18.9.0/33", 7]);
  assert.deepEqual(some.ranges["198.18.201.1"], ["198.18.50.0/24"]);
  assert.deepEqual(some.skipped, [
    'invalid-object: Service shop/web: loadBalancerSourceRanges entry "not-a-cidr" is not a CIDR; it is left out, the other ranges still apply.',
    'invalid-object: Service shop/web: loadBalancerSourceRanges entry "198.18.9.0/33" is not a CIDR; it is left out, the other ranges still apply.',
    "invalid-object: Service shop/web: loadBalancerSourceRanges entry 7 is not a CIDR; it is left out, the other ranges still apply.",
  ]);
  const none = restricted(["nonsense"]);
  assert.deepEqual([none.ranges["198.18.201.1"], none.ranges["fd00::201:1"], none.ranges["198.18.200.1"]], [[], [], "any"]);
  assert.equal(none.skipped.length, 1);
});
