// The metrics registry as exposition text, and the status server over real HTTP.

import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, test, type TestContext } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { Registry } from "../src/metrics/registry.ts";
import { parseListenAddress, startStatusServer, type HealthStatus, type StatusServerOptions } from "../src/metrics/server.ts";

describe("Registry", () => {
  test("counter with labels: series sorted, escaped, HELP escaped", () => {
    const registry = new Registry();
    const requests = registry.counter({ name: "requests_total", help: "Requests\\served\nper path.", labelNames: ["path", "code"] });
    requests.inc({ path: "/b", code: "200" });
    requests.inc({ path: "/a", code: "500" }, 2);
    requests.inc({ path: "/b", code: "200" }, 0.5);
    requests.inc({ path: 'q"\\\n', code: "200" });
    assert.equal(requests.get({ path: "/b", code: "200" }), 1.5);
    assert.equal(requests.get({ path: "/c", code: "200" }), 0);
    assert.equal(
      registry.render(),
      [
        "# HELP requests_total Requests\\\\served\\nper path.",
        "# TYPE requests_total counter",
        'requests_total{path="/a",code="500"} 2',
        'requests_total{path="/b",code="200"} 1.5',
        'requests_total{path="q\\"\\\\\\n",code="200"} 1',
        "",
      ].join("\n"),
    );
  });

  test("metrics are sorted by name; label-less ones render 0 before use", () => {
    const registry = new Registry();
    registry.gauge({ name: "zeta", help: "Z." }).set(-1.25);
    registry.counter({ name: "alpha_total", help: "A." });
    registry.gauge({ name: "mid", help: "M.", labelNames: ["x"] });
    assert.equal(
      registry.render(),
      "# HELP alpha_total A.\n# TYPE alpha_total counter\nalpha_total 0\n" +
        "# HELP mid M.\n# TYPE mid gauge\n" +
        "# HELP zeta Z.\n# TYPE zeta gauge\nzeta -1.25\n",
    );
  });

  test("histogram: cumulative buckets, +Inf, _sum and _count", () => {
    const registry = new Registry();
    const latency = registry.histogram({ name: "latency_seconds", help: "Latency.", labelNames: ["op"], buckets: [0.1, 1, 5] });
    for (const value of [0.05, 0.1, 0.5, 3, 7]) latency.observe({ op: "get" }, value);
    latency.observe({ op: "set" }, 0.2);
    assert.deepEqual(latency.get({ op: "get" }), { sum: 10.65, count: 5 });
    assert.equal(
      registry.render(),
      [
        "# HELP latency_seconds Latency.",
        "# TYPE latency_seconds histogram",
        'latency_seconds_bucket{op="get",le="0.1"} 2',
        'latency_seconds_bucket{op="get",le="1"} 3',
        'latency_seconds_bucket{op="get",le="5"} 4',
        'latency_seconds_bucket{op="get",le="+Inf"} 5',
        'latency_seconds_sum{op="get"} 10.65',
        'latency_seconds_count{op="get"} 5',
        'latency_seconds_bucket{op="set",le="0.1"} 0',
        'latency_seconds_bucket{op="set",le="1"} 1',
        'latency_seconds_bucket{op="set",le="5"} 1',
        'latency_seconds_bucket{op="set",le="+Inf"} 1',
        'latency_seconds_sum{op="set"} 0.2',
        'latency_seconds_count{op="set"} 1',
        "",
      ].join("\n"),
    );
  });

  test("gauge: set, inc, dec, reset drops every label set", () => {
    const registry = new Registry();
    const slots = registry.gauge({ name: "slots", help: "Slots.", labelNames: ["backend"] });
    slots.set({ backend: "a" }, 4);
    slots.inc({ backend: "a" });
    slots.dec({ backend: "b" }, 2);
    assert.equal(registry.render(), '# HELP slots Slots.\n# TYPE slots gauge\nslots{backend="a"} 5\nslots{backend="b"} -2\n');
    slots.reset();
    slots.set({ backend: "c" }, 1);
    assert.equal(registry.render(), '# HELP slots Slots.\n# TYPE slots gauge\nslots{backend="c"} 1\n');
  });

  test("onRender: a collector sets its gauges at every render, from the value at that moment", () => {
    const registry = new Registry();
    const slots = registry.gauge({ name: "slots", help: "Slots.", labelNames: ["backend"] });
    let used = 1;
    registry.onRender(() => {
      slots.reset();
      slots.set({ backend: "a" }, used);
    });
    assert.match(registry.render(), /^slots\{backend="a"\} 1$/m);
    used = 7;
    assert.match(registry.render(), /^slots\{backend="a"\} 7$/m);
  });

  test("invalid names, labels and values are refused", () => {
    const registry = new Registry();
    for (const labelNames of [["1x"], ["a-b"], ["__reserved"], ["a", "a"], [""]]) {
      assert.throws(() => registry.counter({ name: `c_${labelNames.length}_total`, help: "h", labelNames }), TypeError, String(labelNames));
    }
    assert.throws(() => registry.histogram({ name: "h", help: "h", labelNames: ["le"] }), TypeError);
    assert.throws(() => registry.histogram({ name: "h", help: "h", buckets: [1, 1] }), TypeError);
    assert.throws(() => registry.gauge({ name: "bad-name", help: "h" }), TypeError);
    registry.gauge({ name: "dup", help: "h" });
    assert.throws(() => registry.gauge({ name: "dup", help: "h" }), /already registered/);

    const counter = registry.counter({ name: "ok_total", help: "h", labelNames: ["result"] });
    const untyped = (...args: unknown[]) => Reflect.apply(counter.inc, counter, args);
    assert.throws(() => untyped({ result: 1 }), /label result must be a string/);
    assert.throws(() => untyped({}), /label result must be a string/);
    assert.throws(() => untyped({ result: "ok", extra: "x" }), /unknown label "extra"/);
    assert.throws(() => counter.inc({ result: "ok" }, -1), /only goes up/);
    assert.throws(() => counter.inc({ result: "ok" }, Number.NaN), /expected a number/);
  });

  test("createMetrics: kube_haproxy_ names, millisecond buckets", () => {
    const metrics = createMetrics();
    metrics.runtimeCommands.inc({ result: "error" });
    metrics.slots.set({ backend: "default/web:http", state: "used" }, 3);
    metrics.networkProgrammingDuration.observe(0.0007);
    const text = metrics.render();
    assert.match(text, /^kube_haproxy_runtime_commands_total\{result="error"\} 1$/m);
    assert.match(text, /^kube_haproxy_slots\{backend="default\/web:http",state="used"\} 3$/m);
    assert.match(text, /^kube_haproxy_network_programming_duration_seconds_bucket\{le="0.0005"\} 0$/m);
    assert.match(text, /^kube_haproxy_network_programming_duration_seconds_bucket\{le="0.001"\} 1$/m);
    assert.match(text, /^kube_haproxy_sync_duration_seconds_bucket\{le="0.0001"\} 0$/m);
    const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(families, [
      "kube_haproxy_capture_failures_total counter",
      "kube_haproxy_endpoints gauge",
      "kube_haproxy_last_sync_timestamp_seconds gauge",
      "kube_haproxy_network_programming_duration_seconds histogram",
      "kube_haproxy_reloads_total counter",
      "kube_haproxy_runtime_commands_total counter",
      "kube_haproxy_runtime_reconnects_total counter",
      "kube_haproxy_servers_down gauge",
      "kube_haproxy_services gauge",
      "kube_haproxy_skipped_total counter",
      "kube_haproxy_slots gauge",
      "kube_haproxy_sync_duration_seconds histogram",
      "kube_haproxy_watch_restarts_total counter",
    ]);
  });
});

describe("parseListenAddress", () => {
  test("accepts host:port, [ipv6]:port and :port", () => {
    assert.deepEqual(parseListenAddress("127.0.0.1:0", "o"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseListenAddress("[::]:10249", "o"), { host: "::", port: 10249 });
    assert.deepEqual(parseListenAddress("localhost:10256", "o"), { host: "localhost", port: 10256 });
    assert.deepEqual(parseListenAddress(":10256", "o"), { host: undefined, port: 10256 });
  });

  test("rejects garbage naming the option", () => {
    for (const value of ["", "127.0.0.1", "::1:80", "[::1]", "[1.2.3.4]:80", "host:65536", "a b:1", "http://x:1", "x:-1"]) {
      assert.throws(
        () => parseListenAddress(value, "metricsAddress"),
        (err) => isKubeHaproxyError(err, "E_BAD_OPTION") && err.message.startsWith("metricsAddress: "),
        JSON.stringify(value),
      );
    }
  });
});

async function statusOf(url: URL): Promise<number> {
  const res = await fetch(url);
  await res.body?.cancel();
  return res.status;
}

/** A port nothing listens on right now, for a second server on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

describe("startStatusServer", () => {
  const clock = () => new Date("2025-01-02T03:04:05.000Z");

  async function start(t: TestContext, patch: Partial<StatusServerOptions> = {}) {
    const server = await startStatusServer({
      metricsAddress: "127.0.0.1:0",
      healthAddress: "127.0.0.1:0",
      render: () => "up 1\n",
      health: () => ({ healthy: true, lastUpdated: new Date("2025-01-02T03:04:00.000Z") }),
      now: clock,
      ...patch,
    });
    t.after(() => server.close());
    return server;
  }

  test("GET /metrics: text format 0.0.4", async (t) => {
    const { metricsUrl } = await start(t);
    assert.match(metricsUrl!, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(metricsUrl!);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await res.text(), "up 1\n");
    const head = await fetch(metricsUrl!, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    assert.equal((await fetch(metricsUrl!, { method: "POST" })).status, 405);
  });

  test("/healthz: 200 while healthy, 503 with a reason once not; /livez likewise", async (t) => {
    let status: HealthStatus = { healthy: true, lastUpdated: new Date("2025-01-02T03:04:00.000Z") };
    const { healthUrl } = await start(t, { health: () => status });
    const livez = new URL("/livez", healthUrl);

    const ok = await fetch(healthUrl);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "application/json");
    assert.deepEqual(await ok.json(), { lastUpdated: "2025-01-02T03:04:00.000Z", currentTime: "2025-01-02T03:04:05.000Z" });

    status = { healthy: false, lastUpdated: undefined, reason: "runtime API unreachable" };
    const bad = await fetch(healthUrl);
    assert.equal(bad.status, 503);
    assert.deepEqual(await bad.json(), { lastUpdated: null, currentTime: "2025-01-02T03:04:05.000Z", reason: "runtime API unreachable" });
    assert.equal(await statusOf(livez), 503);

    status = { healthy: true, lastUpdated: undefined };
    const live = await fetch(livez);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { lastUpdated: null, currentTime: "2025-01-02T03:04:05.000Z" });
  });

  test("a throwing render is a 500, a throwing health check a 503", async (t) => {
    const fail = () => {
      throw new Error("boom");
    };
    const { metricsUrl, healthUrl } = await start(t, { render: fail, health: fail });
    assert.equal(await statusOf(new URL(metricsUrl!)), 500);
    const res = await fetch(healthUrl);
    assert.equal(res.status, 503);
    assert.match(((await res.json()) as { reason: string }).reason, /health check failed: Error: boom/);
  });

  test("unknown paths are 404", async (t) => {
    const { metricsUrl, healthUrl } = await start(t);
    const urls = [new URL("/", healthUrl), new URL("/metricsx", metricsUrl), new URL("/healthz/x", healthUrl)];
    assert.deepEqual(await Promise.all(urls.map(statusOf)), [404, 404, 404]);
  });

  test("separate addresses: each server serves only its own routes", async (t) => {
    const { metricsUrl, healthUrl } = await start(t, { metricsAddress: `127.0.0.1:${await freePort()}` });
    assert.notEqual(new URL(metricsUrl!).port, new URL(healthUrl).port);
    const own = [new URL(metricsUrl!), new URL(healthUrl), new URL("/livez", healthUrl)];
    const other = [new URL("/healthz", metricsUrl), new URL("/metrics", healthUrl)];
    assert.deepEqual(await Promise.all([...own, ...other].map(statusOf)), [200, 200, 200, 404, 404]);
  });

  test("equal addresses: one server serves all routes", async (t) => {
    const { metricsUrl, healthUrl } = await start(t, { metricsAddress: "127.0.0.1:0", healthAddress: "127.0.0.1:0" });
    assert.equal(new URL(metricsUrl!).origin, new URL(healthUrl).origin);
    const urls = ["/metrics", "/healthz", "/livez"].map((path) => new URL(path, healthUrl));
    assert.deepEqual(await Promise.all(urls.map(statusOf)), [200, 200, 200]);
  });

  test("metrics off: no metrics URL, /metrics is 404", async (t) => {
    const { metricsUrl, healthUrl } = await start(t, { metricsAddress: "" });
    assert.equal(metricsUrl, undefined);
    assert.equal(await statusOf(new URL("/metrics", healthUrl)), 404);
  });

  test("a bad address is refused before anything listens", async (t) => {
    await assert.rejects(
      start(t, { metricsAddress: "nope" }),
      (err) => isKubeHaproxyError(err, "E_BAD_OPTION") && err.message.startsWith('metricsAddress: invalid address "nope"'),
    );
  });
});
