// Service + EndpointSlices → backends: kube-proxy's semantics, one table or test per rule.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DiscoveryV1EndpointPort, V1Endpoint, V1EndpointConditions, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { ALGORITHMS, takesDynamicServers } from "../src/haproxy/algorithms.ts";
import {
  SERVICE_LABEL_SELECTOR,
  isSelectedService,
  resolvePortConflicts,
  serviceKey,
  serviceLabelSelector,
  sliceServiceKey,
  translateService,
  type ServiceTranslation,
  type SkipReason,
  type TranslateOptions,
} from "../src/kube/translate.ts";
import { structureOf, type Backend } from "../src/model.ts";
import { draining, ready } from "./helpers.ts";

const OPTIONS: TranslateOptions = { bindAddress: "127.0.0.1", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4 };

function makeService(ns: string, name: string, patch: (svc: V1Service) => void = () => {}): V1Service {
  const svc: V1Service = {
    metadata: { namespace: ns, name, creationTimestamp: new Date("2024-01-01T00:00:00Z") },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.20", ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }] },
  };
  patch(svc);
  return svc;
}

function ep(ip: string, conditions: V1EndpointConditions = { ready: true, serving: true, terminating: false }): V1Endpoint {
  return { addresses: [ip], conditions };
}

function makeSlice(
  ns: string,
  svc: string,
  name: string,
  endpoints: V1Endpoint[],
  ports: DiscoveryV1EndpointPort[] = [{ name: "http", port: 8080, protocol: "TCP" }],
  patch: (slice: V1EndpointSlice) => void = () => {},
): V1EndpointSlice {
  const slice: V1EndpointSlice = {
    addressType: "IPv4",
    metadata: { namespace: ns, name, labels: { "kubernetes.io/service-name": svc } },
    endpoints,
    ports,
  };
  patch(slice);
  return slice;
}

function only(svc: V1Service, slices: V1EndpointSlice[] = [], options: TranslateOptions = OPTIONS): Backend {
  const { backends } = translateService(svc, slices, options);
  assert.equal(backends.length, 1, `one backend expected, got ${backends.map((b) => b.name).join(", ")}`);
  return backends[0]!;
}

const reasons = (t: ServiceTranslation): SkipReason[] => t.skipped.map((s) => s.reason);

test("a named port: the whole backend", () => {
  const svc = makeService("shop", "web");
  const backend = only(svc, [makeSlice("shop", "web", "web-1", [ep("10.0.0.2"), ep("10.0.0.1")])]);
  assert.deepEqual(backend, {
    name: "shop:web:http",
    servicePort: "shop/web:http",
    mode: "tcp",
    algorithm: "roundrobin",
    binds: [{ address: "127.0.0.1", port: 80 }],
    minSlots: 4,
    endpoints: [ready("10.0.0.1", 8080), ready("10.0.0.2", 8080)],
  });
});

test("named targetPort: the slice port named like the Service port gives the endpoint port", () => {
  const svc = makeService("shop", "web", (s) => { s.spec!.ports = [{ name: "http", port: 80, targetPort: "http" }, { name: "admin", port: 9000 }]; });
  const slice = makeSlice("shop", "web", "web-1", [ep("10.0.0.1")], [{ name: "admin", port: 9090 }, { name: "http", port: 8080 }]);
  const { backends } = translateService(svc, [slice], OPTIONS);
  assert.deepEqual(backends.map((b) => [b.name, b.binds[0]?.port, b.endpoints]), [
    ["shop:web:admin", 9000, [ready("10.0.0.1", 9090)]],
    ["shop:web:http", 80, [ready("10.0.0.1", 8080)]],
  ]);
});

test("an unnamed single port: named by number, protocol defaults to TCP on both sides", () => {
  const svc = makeService("shop", "web", (s) => { s.spec!.ports = [{ port: 80 }]; });
  const backend = only(svc, [makeSlice("shop", "web", "web-1", [ep("10.0.0.1")], [{ port: 8080 }])]);
  assert.equal(backend.name, "shop:web:80");
  assert.equal(backend.servicePort, "shop/web:80");
  assert.deepEqual(backend.endpoints, [ready("10.0.0.1", 8080)]);
  assert.deepEqual(only(svc, [makeSlice("shop", "web", "web-1", [ep("10.0.0.1")], [{ name: "", port: 8080, protocol: "TCP" }])]).endpoints, [ready("10.0.0.1", 8080)]);
});

describe("whole Service skipped", () => {
  const cases: { name: string; svc: V1Service; reason: SkipReason; options?: Partial<TranslateOptions> }[] = [
    { name: "headless (clusterIP None)", svc: makeService("a", "b", (s) => { s.spec!.clusterIP = "None"; }), reason: "headless" },
    { name: "ExternalName", svc: makeService("a", "b", (s) => { s.spec = { type: "ExternalName", externalName: "example.com", ports: [{ port: 80 }] }; }), reason: "external-name" },
    { name: "headless label", svc: makeService("a", "b", (s) => { s.metadata!.labels = { "service.kubernetes.io/headless": "" }; }), reason: "headless" },
    { name: "proxy-name label, no name of ours", svc: makeService("a", "b", (s) => { s.metadata!.labels = { "service.kubernetes.io/service-proxy-name": "other" }; }), reason: "proxy-name" },
    { name: "proxy-name label naming another proxy", svc: makeService("a", "b", (s) => { s.metadata!.labels = { "service.kubernetes.io/service-proxy-name": "other" }; }), reason: "proxy-name", options: { serviceProxyName: "kube-haproxy" } },
    { name: "no ports", svc: makeService("a", "b", (s) => { s.spec!.ports = []; }), reason: "no-ports" },
    { name: "ports absent", svc: makeService("a", "b", (s) => { delete s.spec!.ports; }), reason: "no-ports" },
    { name: "namespace not a DNS label", svc: makeService("Shop", "web"), reason: "invalid-object" },
    { name: "name not an RFC 1035 label (leading digit)", svc: makeService("shop", "1web"), reason: "invalid-object" },
    { name: "name longer than 63", svc: makeService("shop", "w".repeat(64)), reason: "invalid-object" },
    { name: "name missing", svc: makeService("shop", "web", (s) => { delete s.metadata!.name; }), reason: "invalid-object" },
    { name: "namespace with a colon", svc: makeService("a:b", "web"), reason: "invalid-object" },
    { name: "default/kubernetes in onlyfetch", svc: makeService("default", "kubernetes"), reason: "cluster-service" },
    { name: "kube-system/kube-dns in onlyfetch", svc: makeService("kube-system", "kube-dns"), reason: "cluster-service" },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const slice = makeSlice(c.svc.metadata?.namespace ?? "", c.svc.metadata?.name ?? "", "s", [ep("10.0.0.1")]);
      const t = translateService(c.svc, [slice], { ...OPTIONS, ...c.options });
      assert.deepEqual(t.backends, []);
      assert.deepEqual(reasons(t), [c.reason]);
      assert.equal(t.skipped[0]?.service, serviceKey(c.svc));
      assert.equal(t.skipped[0]?.port, undefined);
      assert.match(t.skipped[0]?.message ?? "", /\.$/);
    });
  }

  test("a 63-character name and a 63-character namespace are fine", () => {
    assert.equal(translateService(makeService("n".repeat(63), "w".repeat(63)), [], OPTIONS).backends.length, 1);
  });

  test("a Service labelled with our own proxy name is translated", () => {
    const svc = makeService("a", "b", (s) => { s.metadata!.labels = { "service.kubernetes.io/service-proxy-name": "kube-haproxy" }; });
    assert.equal(translateService(svc, [], { ...OPTIONS, serviceProxyName: "kube-haproxy" }).backends.length, 1);
    assert.deepEqual(reasons(translateService(svc, [], OPTIONS)), ["proxy-name"]);
  });
});

describe("label selector", () => {
  test("kube-proxy's selector without a proxy name; only the headless part with one", () => {
    assert.equal(SERVICE_LABEL_SELECTOR, "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless");
    assert.equal(serviceLabelSelector(), SERVICE_LABEL_SELECTOR);
    assert.equal(serviceLabelSelector("kube-haproxy"), "!service.kubernetes.io/headless");
  });

  const cases: [Record<string, string> | undefined, string | undefined, boolean][] = [
    [undefined, undefined, true],
    [{ app: "web" }, undefined, true],
    [{ "service.kubernetes.io/headless": "" }, undefined, false],
    [{ "service.kubernetes.io/headless": "" }, "kube-haproxy", false],
    [{ "service.kubernetes.io/service-proxy-name": "kube-haproxy" }, undefined, false],
    [{ "service.kubernetes.io/service-proxy-name": "kube-haproxy" }, "kube-haproxy", true],
    [{ "service.kubernetes.io/service-proxy-name": "other" }, "kube-haproxy", false],
    [{ "service.kubernetes.io/service-proxy-name": "" }, "", false],
  ];
  for (const [labels, proxyName, selected] of cases) {
    test(`${JSON.stringify(labels)} with ${JSON.stringify(proxyName)} → ${selected}`, () => {
      assert.equal(isSelectedService(labels, proxyName), selected);
    });
  }
});

describe("per port", () => {
  const cases: { name: string; port: { name?: string; port: number; protocol?: string }; reason: SkipReason }[] = [
    { name: "UDP", port: { name: "dns", port: 53, protocol: "UDP" }, reason: "udp" },
    { name: "SCTP", port: { name: "sig", port: 3868, protocol: "SCTP" }, reason: "sctp" },
    { name: "unknown protocol", port: { name: "x", port: 81, protocol: "QUIC" }, reason: "invalid-object" },
    { name: "port name with an underscore", port: { name: "my_port", port: 81 }, reason: "invalid-object" },
    { name: "port name in capitals", port: { name: "HTTP", port: 81 }, reason: "invalid-object" },
    { name: "port name longer than 63", port: { name: "p".repeat(64), port: 81 }, reason: "invalid-object" },
    { name: "port 0", port: { name: "zero", port: 0 }, reason: "invalid-object" },
    { name: "port 65536", port: { name: "big", port: 65536 }, reason: "invalid-object" },
    { name: "port 1.5", port: { name: "frac", port: 1.5 }, reason: "invalid-object" },
    { name: "a second port of the same name", port: { name: "http", port: 81 }, reason: "invalid-object" },
  ];
  for (const c of cases) {
    test(`${c.name} → ${c.reason}; the other port still works`, () => {
      const svc = makeService("a", "b", (s) => { s.spec!.ports!.push(c.port); });
      const t = translateService(svc, [makeSlice("a", "b", "s", [ep("10.0.0.1")])], OPTIONS);
      assert.deepEqual(t.backends.map((b) => [b.name, b.endpoints.length]), [["a:b:http", 1]]);
      assert.deepEqual(t.skipped.map((s) => [s.port, s.reason]), [[c.port.name || String(c.port.port), c.reason]]);
    });
  }

  test("a long but valid port name (DNS label, not IANA's 15) is accepted and hashed to fit", () => {
    const svc = makeService("a", "b", (s) => { s.spec!.ports = [{ name: "metrics-endpoint-for-scraping", port: 9100 }]; });
    assert.equal(only(svc).servicePort, "a/b:metrics-endpoint-for-scraping");
  });

  test("TCP and UDP on the same number: only TCP is configured", () => {
    const svc = makeService("a", "b", (s) => { s.spec!.ports = [{ name: "dns-tcp", port: 53, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }]; });
    const t = translateService(svc, [], OPTIONS);
    assert.deepEqual(t.backends.map((b) => b.name), ["a:b:dns-tcp"]);
    assert.deepEqual(reasons(t), ["udp"]);
  });

  test("a UDP-only Service gives no backend, one record per port", () => {
    const svc = makeService("a", "b", (s) => { s.spec!.ports = [{ name: "dns", port: 53, protocol: "UDP" }, { name: "x", port: 54, protocol: "UDP" }]; });
    assert.deepEqual(reasons(translateService(svc, [], OPTIONS)), ["udp", "udp"]);
  });
});

describe("annotations", () => {
  const cases: { annotations: Record<string, string>; expect: Partial<Backend>; bad: boolean }[] = [
    { annotations: {}, expect: { mode: "tcp", algorithm: "roundrobin", minSlots: 4 }, bad: false },
    { annotations: { "kube-haproxy.io/mode": "http" }, expect: { mode: "http" }, bad: false },
    { annotations: { "kube-haproxy.io/mode": "tcp" }, expect: { mode: "tcp" }, bad: false },
    { annotations: { "kube-haproxy.io/mode": "HTTP" }, expect: { mode: "tcp" }, bad: true },
    { annotations: { "kube-haproxy.io/mode": "http2" }, expect: { mode: "tcp" }, bad: true },
    { annotations: { "kube-haproxy.io/algorithm": "leastconn" }, expect: { algorithm: "leastconn" }, bad: false },
    { annotations: { "kube-haproxy.io/algorithm": "static-rr" }, expect: { algorithm: "static-rr" }, bad: false },
    { annotations: { "kube-haproxy.io/algorithm": "uri" }, expect: { algorithm: "uri" }, bad: false },
    { annotations: { "kube-haproxy.io/algorithm": "hdr(host)" }, expect: { algorithm: "roundrobin" }, bad: true },
    { annotations: { "kube-haproxy.io/algorithm": "random(3)" }, expect: { algorithm: "roundrobin" }, bad: true },
    { annotations: { "kube-haproxy.io/algorithm": "leastconn; reload" }, expect: { algorithm: "roundrobin" }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "32" }, expect: { minSlots: 32 }, bad: false },
    { annotations: { "kube-haproxy.io/slots": "10000" }, expect: { minSlots: 10000 }, bad: false },
    { annotations: { "kube-haproxy.io/slots": "10001" }, expect: { minSlots: 4 }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "0" }, expect: { minSlots: 4 }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "-1" }, expect: { minSlots: 4 }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "1.5" }, expect: { minSlots: 4 }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "016" }, expect: { minSlots: 4 }, bad: true },
    { annotations: { "kube-haproxy.io/slots": "" }, expect: { minSlots: 4 }, bad: true },
    { annotations: {}, expect: { healthCheck: undefined }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "true" }, expect: { healthCheck: { intervalMs: 500 } }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "false" }, expect: { healthCheck: undefined }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "250ms" }, expect: { healthCheck: { intervalMs: 250 } }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "100ms" }, expect: { healthCheck: { intervalMs: 100 } }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "2s" }, expect: { healthCheck: { intervalMs: 2000 } }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "60s" }, expect: { healthCheck: { intervalMs: 60000 } }, bad: false },
    { annotations: { "kube-haproxy.io/health-check": "99ms" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "61s" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "1m" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "1.5s" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "TRUE" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "" }, expect: { healthCheck: undefined }, bad: true },
    { annotations: { "kube-haproxy.io/health-check": "500ms rise 1" }, expect: { healthCheck: undefined }, bad: true },
  ];
  for (const c of cases) {
    test(`${JSON.stringify(c.annotations)}`, () => {
      const svc = makeService("a", "b", (s) => {
        s.metadata!.annotations = c.annotations;
        s.spec!.ports!.push({ name: "admin", port: 81 });
      });
      const t = translateService(svc, [], OPTIONS);
      assert.equal(t.backends.length, 2, "a bad annotation never drops the Service");
      for (const backend of t.backends) {
        for (const [field, value] of Object.entries(c.expect)) assert.deepEqual(backend[field as keyof Backend], value, field);
      }
      assert.deepEqual(t.skipped.map((s) => [s.reason, s.port]), c.bad ? [["bad-annotation", undefined]] : [], "one record per Service, not per port");
    });
  }

  test("--health-check sets the default; the annotation turns it off or changes the interval", () => {
    const options = { ...OPTIONS, healthCheck: { intervalMs: 1000 } };
    const check = (annotations: Record<string, string>): ServiceTranslation => translateService(makeService("a", "b", (s) => (s.metadata!.annotations = annotations)), [], options);
    assert.deepEqual(check({}).backends[0]!.healthCheck, { intervalMs: 1000 });
    assert.equal("healthCheck" in check({ "kube-haproxy.io/health-check": "false" }).backends[0]!, false);
    assert.deepEqual(check({ "kube-haproxy.io/health-check": "true" }).backends[0]!.healthCheck, { intervalMs: 500 });
    const bad = check({ "kube-haproxy.io/health-check": "often" });
    assert.deepEqual(bad.backends[0]!.healthCheck, { intervalMs: 1000 }, "a bad value keeps the default");
    assert.match(bad.skipped[0]!.message, /"often" is invalid; using a health check every 1000 ms/);
    const backend = check({}).backends[0]!;
    assert.notEqual(structureOf(backend), structureOf({ ...backend, healthCheck: { intervalMs: 500 } }), "the interval is structure: only a reload changes it");
  });


  test("ALGORITHMS holds exactly HAProxy's argument-less algorithms; the dynamic ones take add server", () => {
    assert.deepEqual([...ALGORITHMS].sort(), ["first", "leastconn", "random", "roundrobin", "source", "static-rr", "uri"]);
    assert.deepEqual([...ALGORITHMS].filter(takesDynamicServers).sort(), ["first", "leastconn", "random", "roundrobin"]);
    assert.equal(takesDynamicServers("toString"), false, "only the table's own keys");
  });
});

describe("session affinity", () => {
  const cases: [string, (s: V1Service) => void, number | undefined][] = [
    ["ClientIP with a timeout", (s) => { s.spec!.sessionAffinity = "ClientIP"; s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 60 } }; }, 60],
    ["ClientIP without a config: kube-proxy's default", (s) => { s.spec!.sessionAffinity = "ClientIP"; }, 10800],
    ["None", (s) => { s.spec!.sessionAffinity = "None"; s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 60 } }; }, undefined],
    ["absent", () => {}, undefined],
  ];
  for (const [name, patch, expected] of cases) {
    test(name, () => {
      const backend = only(makeService("a", "b", patch));
      assert.equal(backend.affinityTimeoutSeconds, expected);
      assert.equal("affinityTimeoutSeconds" in backend, expected !== undefined);
    });
  }

  // The API server keeps timeoutSeconds within 1…86400; outside (an API that did not validate),
  // the nearest valid value is used and the replacement reported, so the Service is still served.
  const invalid: [timeoutSeconds: number, used: number][] = [
    [86_401, 86_400], [2 ** 40, 86_400], [0, 10_800], [-5, 10_800], [1.5, 10_800], [Number.NaN, 10_800],
  ];
  for (const [timeoutSeconds, used] of invalid) {
    test(`ClientIP with timeoutSeconds ${timeoutSeconds}: ${used}, reported`, () => {
      const t = translateService(makeService("a", "b", (s) => {
        s.spec!.sessionAffinity = "ClientIP";
        s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds } };
      }), [], OPTIONS);
      assert.equal(t.backends[0]!.affinityTimeoutSeconds, used);
      assert.deepEqual(t.skipped.map((s) => s.reason), ["invalid-affinity-timeout"], "one record per Service, not per port");
      assert.match(t.skipped[0]!.message, new RegExp(`timeoutSeconds ${timeoutSeconds === timeoutSeconds ? timeoutSeconds : "null"} is not within 1…86400; using ${used}`));
    });
  }
  test("ClientIP with the maximum, 86400: kept, nothing reported", () => {
    const t = translateService(makeService("a", "b", (s) => {
      s.spec!.sessionAffinity = "ClientIP";
      s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 86_400 } };
    }), [], OPTIONS);
    assert.equal(t.backends[0]!.affinityTimeoutSeconds, 86_400);
    assert.deepEqual(t.skipped, []);
  });
});

describe("endpoints", () => {
  const svc = makeService("a", "b");
  const endpointsOf = (slices: V1EndpointSlice[]) => only(svc, slices).endpoints;

  test("slices of another Service or namespace, unlabelled slices and FQDN slices are ignored", () => {
    assert.deepEqual(endpointsOf([
      makeSlice("a", "b", "ok", [ep("10.0.0.1")]),
      makeSlice("a", "other", "x1", [ep("10.0.0.2")]),
      makeSlice("z", "b", "x2", [ep("10.0.0.3")]),
      makeSlice("a", "b", "x3", [ep("10.0.0.4")], undefined, (s) => { s.metadata!.labels = {}; }),
      makeSlice("a", "b", "x4", [{ addresses: ["web.example.com"] }], undefined, (s) => { s.addressType = "FQDN"; }),
    ]), [ready("10.0.0.1", 8080)]);
  });

  test("slice ports match by name and protocol", () => {
    assert.deepEqual(endpointsOf([
      makeSlice("a", "b", "s1", [ep("10.0.0.1")], [{ name: "http", port: 8080, protocol: "UDP" }]),
      makeSlice("a", "b", "s2", [ep("10.0.0.2")], [{ name: "admin", port: 9090 }]),
      makeSlice("a", "b", "s3", [ep("10.0.0.3")], [{ port: 7070 }]),
      makeSlice("a", "b", "s4", [ep("10.0.0.4")], [{ name: "http", port: 8080 }]),
    ]), [ready("10.0.0.4", 8080)]);
  });

  test("multiple slices are merged", () => {
    assert.deepEqual(endpointsOf([
      makeSlice("a", "b", "s1", [ep("10.0.0.1"), ep("10.0.0.2")]),
      makeSlice("a", "b", "s2", [ep("10.0.0.3")]),
    ]), [ready("10.0.0.1", 8080), ready("10.0.0.2", 8080), ready("10.0.0.3", 8080)]);
  });

  test("addresses[0] is used", () => {
    assert.deepEqual(endpointsOf([makeSlice("a", "b", "s", [{ addresses: ["10.0.0.1", "10.0.0.9"] }])]), [ready("10.0.0.1", 8080)]);
  });

  test("a duplicate across slices appears once, the more ready copy wins", () => {
    const terminating = { ready: false, serving: true, terminating: true };
    const gone = { ready: false, serving: false, terminating: true };
    assert.deepEqual(endpointsOf([
      makeSlice("a", "b", "s1", [ep("10.0.0.1"), ep("10.0.0.2", terminating), ep("10.0.0.3", gone)]),
      makeSlice("a", "b", "s2", [ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3", terminating)]),
    ]), [ready("10.0.0.1", 8080), ready("10.0.0.2", 8080), draining("10.0.0.3", 8080)]);
  });

  test("same ip on different ports is two endpoints, sorted by ip then port", () => {
    const svc2 = makeService("a", "b", (s) => { s.spec!.ports = [{ port: 80 }]; });
    const backend = only(svc2, [
      makeSlice("a", "b", "s1", [ep("10.0.0.2"), ep("10.0.0.10")], [{ port: 9000 }]),
      makeSlice("a", "b", "s2", [ep("10.0.0.2"), ep("10.0.0.1")], [{ port: 8000 }]),
    ]);
    assert.deepEqual(backend.endpoints, [ready("10.0.0.1", 8000), ready("10.0.0.10", 9000), ready("10.0.0.2", 8000), ready("10.0.0.2", 9000)]);
  });

  const T = true, F = false, _ = undefined;
  const cond = (ready?: boolean, serving?: boolean, terminating?: boolean): V1EndpointConditions => ({
    ...(ready === _ ? {} : { ready }), ...(serving === _ ? {} : { serving }), ...(terminating === _ ? {} : { terminating }),
  });
  const cases: { name: string; endpoints: V1Endpoint[]; expected: ReturnType<typeof ready>[] }[] = [
    { name: "absent conditions count as ready", endpoints: [{ addresses: ["10.0.0.1"] }, ep("10.0.0.2", cond())], expected: [ready("10.0.0.1", 8080), ready("10.0.0.2", 8080)] },
    { name: "absent serving counts as serving", endpoints: [ep("10.0.0.1"), ep("10.0.0.2", cond(F, _, T))], expected: [ready("10.0.0.1", 8080), draining("10.0.0.2", 8080)] },
    { name: "mixed ready and terminating: terminating ones drain", endpoints: [ep("10.0.0.1"), ep("10.0.0.2", cond(F, T, T))], expected: [ready("10.0.0.1", 8080), draining("10.0.0.2", 8080)] },
    { name: "all terminating: serving ones take traffic (fallback)", endpoints: [ep("10.0.0.1", cond(F, T, T)), ep("10.0.0.2", cond(F, T, T))], expected: [ready("10.0.0.1", 8080), ready("10.0.0.2", 8080)] },
    { name: "not serving is excluded", endpoints: [ep("10.0.0.1"), ep("10.0.0.2", cond(F, F, T))], expected: [ready("10.0.0.1", 8080)] },
    { name: "not serving, even as the only ones", endpoints: [ep("10.0.0.1", cond(F, F, T)), ep("10.0.0.2", cond(F, F, F))], expected: [] },
    { name: "not ready and not terminating is excluded", endpoints: [ep("10.0.0.1", cond(F, T, F)), ep("10.0.0.2", cond(F, T, _))], expected: [] },
    { name: "not ready, serving, not terminating next to a terminating one", endpoints: [ep("10.0.0.1", cond(F, T, F)), ep("10.0.0.2", cond(F, T, T))], expected: [ready("10.0.0.2", 8080)] },
  ];
  for (const c of cases) {
    test(`conditions: ${c.name}`, () => {
      assert.deepEqual(endpointsOf([makeSlice("a", "b", "s", c.endpoints)]), c.expected);
    });
  }

  test("an invalid address is reported and skipped, the rest kept", () => {
    const t = translateService(svc, [makeSlice("a", "b", "s", [ep("10.0.0.1"), ep("10.0.0.300"), ep("fe80::1%eth0"), ep("10.0.0.2; reload"), { addresses: [] }])], OPTIONS);
    assert.deepEqual(t.backends[0]?.endpoints, [ready("10.0.0.1", 8080)]);
    assert.deepEqual(t.skipped.map((s) => [s.port, s.reason]), Array(4).fill(["http", "invalid-endpoint"]));
  });

  test("an invalid slice port is reported and its endpoints skipped", () => {
    const t = translateService(svc, [
      makeSlice("a", "b", "s1", [ep("10.0.0.1")], [{ name: "http", port: 0 }]),
      makeSlice("a", "b", "s2", [ep("10.0.0.2")], [{ name: "http", port: 70000 }]),
      makeSlice("a", "b", "s3", [ep("10.0.0.3")], [{ name: "http" }]),
      makeSlice("a", "b", "s4", [ep("10.0.0.4")]),
    ], OPTIONS);
    assert.deepEqual(t.backends[0]?.endpoints, [ready("10.0.0.4", 8080)]);
    assert.deepEqual(reasons(t), ["invalid-endpoint", "invalid-endpoint", "invalid-endpoint"]);
  });

  // kube-proxy ignores IPv4-mapped IPv6 endpoint addresses; so do we, saying so, in any spelling.
  const mapped = ["::ffff:10.0.0.9", "::FFFF:10.0.0.9", "::ffff:a00:9", "0:0:0:0:0:ffff:10.0.0.9", "0000:0000:0000:0000:0000:ffff:0a00:0009", "::ffff:0.0.0.0"];
  for (const ip of mapped) {
    test(`an IPv4-mapped IPv6 address is ignored with a reason: ${ip}`, () => {
      const slice = makeSlice("a", "b", "s6", [ep(ip), ep("fd00::1")], undefined, (s) => { s.addressType = "IPv6"; });
      const t = translateService(svc, [slice], OPTIONS);
      assert.deepEqual(t.backends[0]?.endpoints, [ready("fd00::1", 8080)]);
      assert.deepEqual(t.skipped.map((s) => [s.port, s.reason]), [["http", "ipv4-mapped-ipv6"]]);
      assert.match(t.skipped[0]!.message, /EndpointSlice s6 has an IPv4-mapped IPv6 address .*; it is ignored/);
    });
  }
  test("IPv6 addresses that only look alike are kept", () => {
    const alike = ["::ffff:1:2:3", "fd00::ffff:a00:9", "64:ff9b::10.0.0.9", "::10.0.0.9", "::ffff"];
    const slice = makeSlice("a", "b", "s6", alike.map((ip) => ep(ip)), undefined, (s) => { s.addressType = "IPv6"; });
    const t = translateService(svc, [slice], OPTIONS);
    assert.deepEqual(t.skipped, []);
    assert.equal(t.backends[0]?.endpoints.length, alike.length);
  });

  test("IPv6", () => {
    const slice = makeSlice("a", "b", "s6", [ep("fd00::2"), ep("fd00::1")], undefined, (s) => { s.addressType = "IPv6"; });
    assert.deepEqual(endpointsOf([slice]), [ready("fd00::1", 8080), ready("fd00::2", 8080)]);
  });

  test("dual stack: both families end up in the same backend", () => {
    const v4 = makeSlice("a", "b", "s4", [ep("10.0.0.1")]);
    const v6 = makeSlice("a", "b", "s6", [ep("fd00::1")], undefined, (s) => { s.addressType = "IPv6"; });
    assert.deepEqual(endpointsOf([v6, v4]), [ready("10.0.0.1", 8080), ready("fd00::1", 8080)]);
  });

  test("no slices: a backend with no endpoints", () => {
    assert.deepEqual(endpointsOf([]), []);
  });
});

describe("triggerTime", () => {
  const svc = makeService("a", "b");
  const withTrigger = (name: string, value?: string) =>
    makeSlice("a", "b", name, [ep("10.0.0.1")], undefined, (s) => {
      if (value !== undefined) s.metadata!.annotations = { "endpoints.kubernetes.io/last-change-trigger-time": value };
    });
  const cases: [string, V1EndpointSlice[], number | undefined][] = [
    ["the newest across slices", [withTrigger("s1", "2024-05-01T10:00:00Z"), withTrigger("s2", "2024-05-01T10:00:05.5Z"), withTrigger("s3")], Date.UTC(2024, 4, 1, 10, 0, 5, 500)],
    ["with an offset", [withTrigger("s1", "2024-05-01T12:00:00+02:00")], Date.UTC(2024, 4, 1, 10)],
    ["none", [withTrigger("s1")], undefined],
    ["unparseable is ignored", [withTrigger("s1", "yesterday"), withTrigger("s2", "May 1, 2024")], undefined],
    ["a slice of another Service does not count", [withTrigger("s1", "2024-05-01T10:00:00Z"), makeSlice("a", "c", "x", [], undefined, (s) => { s.metadata!.annotations = { "endpoints.kubernetes.io/last-change-trigger-time": "2025-01-01T00:00:00Z" }; })], Date.UTC(2024, 4, 1, 10)],
  ];
  for (const [name, slices, expected] of cases) {
    test(name, () => {
      const backend = only(svc, slices);
      assert.equal(backend.triggerTime, expected);
      assert.equal("triggerTime" in backend, expected !== undefined);
    });
  }
});

test("determinism: shuffled slices give identical output", () => {
  const svc = makeService("a", "b", (s) => { s.spec!.ports = [{ name: "http", port: 80 }, { name: "admin", port: 81 }]; });
  const ports = [{ name: "http", port: 8080 }, { name: "admin", port: 8081 }];
  const slices = [
    makeSlice("a", "b", "s1", [ep("10.0.0.3"), ep("10.0.0.1", { ready: false, serving: true, terminating: true }), ep("bad")], ports),
    makeSlice("a", "b", "s2", [ep("10.0.0.1"), ep("10.0.0.2")], ports, (s) => { s.metadata!.annotations = { "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z" }; }),
    makeSlice("a", "b", "s3", [ep("fd00::1"), ep("10.0.0.2", { ready: false })], ports, (s) => { s.addressType = "IPv6"; }),
    makeSlice("a", "b", "s4", [ep("10.0.0.9"), ep("nope")], ports),
  ];
  const expected = translateService(svc, slices, OPTIONS);
  const orders = [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]];
  for (const order of orders) {
    assert.deepEqual(translateService(svc, order.map((i) => slices[i]!), OPTIONS), expected);
  }
  assert.deepEqual(expected.backends.map((b) => b.name), ["a:b:admin", "a:b:http"]);
});

describe("keys", () => {
  test("serviceKey", () => {
    assert.equal(serviceKey(makeService("a", "b")), "a/b");
    assert.equal(serviceKey({}), "/");
  });
  test("sliceServiceKey comes from the label and the slice's namespace", () => {
    assert.equal(sliceServiceKey(makeSlice("a", "b", "b-x1", [])), "a/b");
    assert.equal(sliceServiceKey(makeSlice("a", "b", "b-x1", [], undefined, (s) => { s.metadata!.labels = {}; })), undefined);
    assert.equal(sliceServiceKey(makeSlice("a", "b", "b-x1", [], undefined, (s) => { delete s.metadata!.namespace; })), undefined);
  });
});

describe("createdAt", () => {
  test("a Date, an RFC 3339 string from a watch event, or missing (sorts last)", () => {
    assert.equal(translateService(makeService("a", "b"), [], OPTIONS).createdAt, Date.UTC(2024, 0, 1));
    const fromJson = makeService("a", "b", (s) => { (s.metadata as { creationTimestamp?: unknown }).creationTimestamp = "2023-06-01T00:00:00Z"; });
    assert.equal(translateService(fromJson, [], OPTIONS).createdAt, Date.UTC(2023, 5, 1));
    const missing = makeService("a", "b", (s) => { delete s.metadata!.creationTimestamp; });
    assert.equal(translateService(missing, [], OPTIONS).createdAt, Number.MAX_SAFE_INTEGER);
  });
});

describe("resolvePortConflicts", () => {
  const at = (iso: string) => (s: V1Service) => { s.metadata!.creationTimestamp = new Date(iso); };
  const translate = (svc: V1Service) => translateService(svc, [], OPTIONS);
  const old = translate(makeService("zeta", "old", at("2020-01-01T00:00:00Z")));
  const young = translate(makeService("alpha", "young", (s) => {
    at("2024-01-01T00:00:00Z")(s);
    s.spec!.ports = [{ name: "http", port: 80 }, { name: "other", port: 8443 }];
  }));
  const twinA = translate(makeService("a", "twin", (s) => { s.spec!.ports = [{ port: 443 }]; }));
  const twinB = translate(makeService("b", "twin", (s) => { s.spec!.ports = [{ port: 443 }]; }));
  const free = translate(makeService("m", "free", (s) => { s.spec!.ports = [{ port: 9999 }]; }));
  const all = [old, young, twinA, twinB, free];

  test("the older Service keeps the port; ties go to namespace/name; the loser's other ports stay", () => {
    const { backends, skipped } = resolvePortConflicts(all);
    assert.deepEqual(backends.map((b) => b.name), ["a:twin:443", "alpha:young:other", "m:free:9999", "zeta:old:http"]);
    assert.deepEqual(skipped.map((s) => [s.service, s.port, s.reason]), [
      ["alpha/young", "http", "port-conflict"],
      ["b/twin", "443", "port-conflict"],
    ]);
    assert.match(skipped[0]!.message, /zeta\/old:http/);
    assert.match(skipped[1]!.message, /a\/twin:443/);
  });

  test("independent of input order", () => {
    const expected = resolvePortConflicts(all);
    for (const order of [[4, 3, 2, 1, 0], [1, 0, 3, 2, 4], [2, 4, 1, 3, 0]]) {
      assert.deepEqual(resolvePortConflicts(order.map((i) => all[i]!)), expected);
    }
  });

  test("no conflict: everything passes, sorted by name", () => {
    const { backends, skipped } = resolvePortConflicts([free, old, twinA]);
    assert.deepEqual(backends.map((b) => b.name), ["a:twin:443", "m:free:9999", "zeta:old:http"]);
    assert.deepEqual(skipped, []);
  });

  test("a Service whose creationTimestamp arrived as a string competes correctly", () => {
    const older = translate(makeService("z", "json", (s) => { (s.metadata as { creationTimestamp?: unknown }).creationTimestamp = "2019-01-01T00:00:00Z"; }));
    const { skipped } = resolvePortConflicts([old, older]);
    assert.deepEqual(skipped.map((s) => s.service), ["zeta/old"]);
  });
});

test("a port reserved on the node is skipped, the Service's other ports kept", () => {
  const svc = makeService("default", "web", (s) => {
    s.spec!.ports = [{ name: "ssh", port: 22 }, { name: "http", port: 8080 }];
  });
  const result = translateService(svc, [], { ...OPTIONS, reservedPorts: new Set([22]) });
  assert.deepEqual(result.backends.map((b) => b.name), ["default:web:http"]);
  assert.deepEqual(result.skipped.map((s) => [s.port, s.reason]), [["ssh", "reserved-port"]]);
  assert.match(result.skipped[0]!.message, /reserved on the node/);
});
