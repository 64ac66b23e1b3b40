// Local and mesh modes, pure: each family of a dual-stack Service port is its own backend (its
// ClusterIP reaches only endpoints of its own family, as kube-proxy), and a backend without
// endpoints carries kube-proxy's verdict for the kernel: reject, or drop when other nodes have
// endpoints this node may not use (a Local traffic policy).

import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Endpoint, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { splitFamilies } from "../src/kube/families.ts";
import { translateService, type TranslateOptions } from "../src/kube/translate.ts";
import { backendName } from "../src/model.ts";
import { makeBackend, ready } from "./helpers.ts";

const MESH: TranslateOptions = { bindAddress: "0.0.0.0", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4, local: { nodeName: "node-a" }, mesh: true };
const LOCAL: TranslateOptions = { ...MESH, mesh: false };
const ONLYFETCH: TranslateOptions = { bindAddress: "0.0.0.0", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4 };

function service(clusterIPs: string[], patch: (svc: V1Service) => void = () => {}): V1Service {
  const svc: V1Service = {
    metadata: { namespace: "shop", name: "web", creationTimestamp: new Date("2024-01-01T00:00:00Z") },
    spec: { type: "ClusterIP", clusterIP: clusterIPs[0]!, clusterIPs, ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
  patch(svc);
  return svc;
}

function endpoint(ip: string, nodeName = "node-a", isReady = true): V1Endpoint {
  return { addresses: [ip], conditions: { ready: isReady, serving: true, terminating: !isReady }, nodeName };
}

function slice(addressType: "IPv4" | "IPv6", endpoints: V1Endpoint[]): V1EndpointSlice {
  return {
    addressType,
    metadata: { namespace: "shop", name: `web-${addressType}`, labels: { "kubernetes.io/service-name": "web" } },
    endpoints,
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

const V4 = slice("IPv4", [endpoint("10.0.0.1"), endpoint("10.0.0.2", "node-b")]);
const V6 = slice("IPv6", [endpoint("fd00::1"), endpoint("fd00::2", "node-b")]);

type Row = [name: string, binds: string[], endpoints: string[], verdict?: string, nodePort?: number];

function rows(svc: V1Service, slices: V1EndpointSlice[], options: TranslateOptions): Row[] {
  return translateService(svc, slices, options).backends.map((b) => [
    b.name,
    b.binds.map((bind) => `${bind.address}:${bind.port}`),
    b.endpoints.map((e) => `${e.ip}:${e.port}:${e.state}`),
    ...(b.endpoints.length === 0 || b.nodePort ? [b.noEndpointVerdict] : []), // the verdict matters only without endpoints
    ...(b.nodePort ? [b.nodePort] : []),
  ] as Row);
}

test("dual-stack: one backend per family, each ClusterIP with its own family's endpoints; the primary keeps the plain name", () => {
  assert.deepEqual(rows(service(["10.96.0.20", "fd00::20"]), [V4, V6], LOCAL), [
    ["shop:web:http", ["10.96.0.20:80"], ["10.0.0.1:8080:ready", "10.0.0.2:8080:ready"]],
    ["shop:web:http:ipv6", ["fd00::20:80"], ["fd00::1:8080:ready", "fd00::2:8080:ready"]],
  ]);
  assert.deepEqual(rows(service(["fd00::20", "10.96.0.20"]), [V4, V6], LOCAL), [
    ["shop:web:http", ["fd00::20:80"], ["fd00::1:8080:ready", "fd00::2:8080:ready"]],
    ["shop:web:http:ipv4", ["10.96.0.20:80"], ["10.0.0.1:8080:ready", "10.0.0.2:8080:ready"]],
  ], "IPv6 primary");
});

test("single-stack: the other family's endpoints are not used (kube-proxy's proxier of that family does not serve the Service)", () => {
  assert.deepEqual(rows(service(["10.96.0.20"]), [V4, V6], LOCAL), [["shop:web:http", ["10.96.0.20:80"], ["10.0.0.1:8080:ready", "10.0.0.2:8080:ready"]]]);
  assert.deepEqual(rows(service(["10.96.0.20"]), [V6], LOCAL), [["shop:web:http", ["10.96.0.20:80"], [], undefined]], "no IPv4 endpoint anywhere: rejected");
});

test("the serving-terminating fallback is per family: a family with no ready endpoint serves its terminating ones", () => {
  const v6Terminating = slice("IPv6", [endpoint("fd00::1", "node-a", false)]);
  assert.deepEqual(rows(service(["10.96.0.20", "fd00::20"]), [slice("IPv4", [endpoint("10.0.0.1"), endpoint("10.0.0.3", "node-a", false)]), v6Terminating], LOCAL), [
    ["shop:web:http", ["10.96.0.20:80"], ["10.0.0.1:8080:ready", "10.0.0.3:8080:drain"]],
    ["shop:web:http:ipv6", ["fd00::20:80"], ["fd00::1:8080:ready"]],
  ]);
});

test("no endpoints: reject; internalTrafficPolicy Local with endpoints on other nodes only: drop (per family)", () => {
  const local = (svc: V1Service): void => void (svc.spec!.internalTrafficPolicy = "Local");
  assert.deepEqual(rows(service(["10.96.0.20", "fd00::20"], local), [slice("IPv4", [endpoint("10.0.0.2", "node-b")])], LOCAL), [
    ["shop:web:http", ["10.96.0.20:80"], [], "drop"],
    ["shop:web:http:ipv6", ["fd00::20:80"], [], undefined],
  ]);
  assert.deepEqual(rows(service(["10.96.0.20"]), [], LOCAL), [["shop:web:http", ["10.96.0.20:80"], [], undefined]]);
});

test("mesh: externalIPs go to their family's backend, the NodePort to the primary family's; eTP Local external backends per family, drop when only other nodes have endpoints", () => {
  const svc = service(["10.96.0.20", "fd00::20"], (s) => {
    s.spec!.type = "NodePort";
    s.spec!.ports![0]!.nodePort = 30080;
    s.spec!.externalIPs = ["192.0.2.10", "2001:db8::10"];
  });
  assert.deepEqual(rows(svc, [V4, V6], MESH), [
    ["shop:web:http", ["10.96.0.20:80", "192.0.2.10:80"], ["10.0.0.1:8080:ready", "10.0.0.2:8080:ready"], undefined, 30080],
    ["shop:web:http:ipv6", ["fd00::20:80", "2001:db8::10:80"], ["fd00::1:8080:ready", "fd00::2:8080:ready"]],
  ]);
  svc.spec!.externalTrafficPolicy = "Local";
  assert.deepEqual(rows(svc, [V4, slice("IPv6", [endpoint("fd00::2", "node-b")])], MESH), [
    ["shop:web:http", ["10.96.0.20:80"], ["10.0.0.1:8080:ready", "10.0.0.2:8080:ready"]],
    ["shop:web:http:external", ["192.0.2.10:80"], ["10.0.0.1:8080:ready"], undefined, 30080],
    ["shop:web:http:external:ipv6", ["2001:db8::10:80"], [], "drop"],
    ["shop:web:http:ipv6", ["fd00::20:80"], ["fd00::2:8080:ready"]],
  ]);
  const shortcuts = translateService(svc, [V4, V6], MESH).backends.map((b) => [b.name, b.nodeShortcut]);
  assert.deepEqual(shortcuts.filter(([, to]) => to !== undefined), [
    ["shop:web:http:external", "shop:web:http"],
    ["shop:web:http:external:ipv6", "shop:web:http:ipv6"],
  ], "the node's short circuit stays within the family");
});

test("mesh, eTP Local: an external backend whose addresses are all of the other family gets only that family's backend", () => {
  const svc = service(["10.96.0.20", "fd00::20"], (s) => {
    s.spec!.externalIPs = ["2001:db8::10"];
    s.spec!.externalTrafficPolicy = "Local";
  });
  assert.deepEqual(rows(svc, [V4, V6], MESH).map(([name, binds]) => [name, binds]), [
    ["shop:web:http", ["10.96.0.20:80"]],
    ["shop:web:http:external:ipv6", ["2001:db8::10:80"]],
    ["shop:web:http:ipv6", ["fd00::20:80"]],
  ]);
});

test("onlyfetch keeps one backend for both families (it binds the node, not ClusterIPs)", () => {
  const [backend, ...rest] = translateService(service(["10.96.0.20", "fd00::20"]), [V4, V6], ONLYFETCH).backends;
  assert.equal(rest.length, 0);
  assert.deepEqual(backend!.endpoints.map((e) => e.ip), ["10.0.0.1", "10.0.0.2", "fd00::1", "fd00::2"]);
});

test("a long name stays within the identifier limit, distinct from its primary", () => {
  const name = backendName("n".repeat(40), "s".repeat(40), "p".repeat(19)); // 101 characters: hashed
  const backend = makeBackend(name, [ready("10.0.0.1", 80), ready("fd00::1", 80)], { binds: [{ address: "10.96.0.1", port: 80 }, { address: "fd00::20", port: 80 }] });
  const [v4, v6] = splitFamilies(backend, "ipv4").map((split) => split.backend);
  assert.equal(v4!.name, name);
  assert.ok(v6!.name.length <= 100 && v6!.name !== name, v6!.name);
});
