// The bootstrap renderer: golden text, determinism, and the real `haproxy -c` on every output:
// valid and without a single warning on the HAProxy under test (CI runs 2.6 and 3.4).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { renderFromCluster } from "../src/bootstrap.ts";
import { checkConfigFile } from "../src/haproxy/config-check.ts";
import { ROOT_ON_PURPOSE, renderConfig, structureHash, type RenderedBackend } from "../src/haproxy/render.ts";
import { isKubeHaproxyError } from "../src/errors.ts";
import { silentLogger } from "../src/log.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { haproxyBinary } from "../src/sim/haproxy.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort } from "../src/sim/pods.ts";
import { fastOptions } from "../src/sim/world.ts";
import { draining, makeBackend, ready, tempDir, waitFor } from "./helpers.ts";

const web: RenderedBackend = {
  backend: makeBackend("default:web:http", [ready("10.0.0.1", 8080), draining("10.0.0.2", 8080)], {
    binds: [{ address: "0.0.0.0", port: 80 }],
    mode: "http",
    affinityTimeoutSeconds: 10800,
  }),
  slots: 6,
  filled: new Map([
    [2, ready("10.0.0.1", 8080)],
    [4, draining("10.0.0.2", 8080)],
  ]),
};
const db: RenderedBackend = {
  backend: makeBackend("db:pg:5432", [], { binds: [{ address: "::", port: 5432 }], algorithm: "leastconn", healthCheck: { intervalMs: 500 } }),
  slots: 4,
  filled: new Map([[1, ready("fd00::5", 5432)]]),
};

/** `haproxy -c` accepts the text and says nothing but (2.6) "Configuration file is valid". */
async function assertValid(t: Parameters<typeof tempDir>[0], text: string): Promise<void> {
  const dir = await tempDir(t);
  const path = join(dir, "haproxy.cfg");
  await writeFile(path, text);
  await assertSilentlyValid(path);
}

async function assertSilentlyValid(path: string): Promise<void> {
  const check = await checkConfigFile(path, haproxyBinary());
  assert.ok(check.ok, `haproxy -c refused:\n${check.output}\n${await readFile(path, "utf8")}`);
  const said = check.output.split("\n").filter((line) => line.trim() !== "" && line.trim() !== "Configuration file is valid");
  assert.deepEqual(said, [], `haproxy -c warned:\n${check.output}`);
}

test("golden configuration, valid for haproxy -c", async (t) => {
  const text = renderConfig([web, db], { runtimeSocket: "/var/run/haproxy/runtime.sock", stats: { bind: { address: "127.0.0.1", port: 8404 } } });
  assert.equal(
    text.replace(/^  setenv KUBE_HAPROXY_STRUCTURE [0-9a-f]{16}$/m, "  setenv KUBE_HAPROXY_STRUCTURE HASH"),
    `# Rendered by kube-haproxy. Endpoint changes are applied at runtime; do not edit.
global
  setenv KUBE_HAPROXY_STRUCTURE HASH
  stats socket /var/run/haproxy/runtime.sock mode 660 level admin expose-fd listeners
  stats timeout 24h
  log stdout format raw local0 notice
  .if defined(KUBE_HAPROXY_ROOT_ON_PURPOSE)
    uid 0
  .endif

defaults
  log global
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 30s
  timeout http-keep-alive 60s
  retries 3
  option redispatch 1

frontend stats
  bind 127.0.0.1:8404
  mode http
  monitor-uri /healthz
  stats enable
  stats uri /
  stats refresh 10s

listen db:pg:5432
  bind [::]:5432
  mode tcp
  balance leastconn
  default-server check inter 500ms fastinter 125ms downinter 500ms fall 2 rise 2
  server s1 [fd00::5]:5432
  server-template s 2-4 0.0.0.0:0 disabled

listen default:web:http
  bind 0.0.0.0:80
  mode http
  option idle-close-on-response
  balance roundrobin
  stick-table type ipv6 size 1m expire 10800s
  stick on src
  server-template s 1-1 0.0.0.0:0 disabled
  server s2 10.0.0.1:8080
  server-template s 3-3 0.0.0.0:0 disabled
  server s4 10.0.0.2:8080 disabled
  server-template s 5-6 0.0.0.0:0 disabled
`,
  );
  await assertValid(t, text);
});

test("deterministic: input order does not matter", () => {
  const options = { runtimeSocket: "/tmp/x.sock" };
  assert.equal(renderConfig([web, db], options), renderConfig([db, web], options));
});

test("stats with a userlist, TCP runtime socket; valid for haproxy -c", async (t) => {
  const text = renderConfig([db], {
    runtimeSocket: "127.0.0.1:9999",
    stats: { bind: { address: "127.0.0.1", port: 8404 }, user: "admin", passwd: "s3cr$t!" },
  });
  assert.match(text, /stats socket ipv4@127\.0\.0\.1:9999 /);
  assert.match(text, /user admin insecure-password s3cr\$t!/);
  assert.match(text, /http-request auth realm kube-haproxy unless \{ http_auth\(kube-haproxy-stats\) \}/);
  await assertValid(t, text);
});

test("refuses values that would break out of the configuration", () => {
  const bad = [
    () => renderConfig([db], { runtimeSocket: "/tmp/x.sock mode 777", stats: undefined }),
    () => renderConfig([db], { runtimeSocket: "/tmp/x.sock", stats: { bind: { address: "127.0.0.1", port: 1 }, user: "a b", passwd: "x" } }),
    () => renderConfig([db], { runtimeSocket: "/tmp/x.sock", stats: { bind: { address: "127.0.0.1", port: 1 }, user: "a", passwd: "x\n  stats admin if TRUE" } }),
    () => renderConfig([{ ...db, backend: { ...db.backend, name: "x\nlisten evil" } }], { runtimeSocket: "/tmp/x.sock" }),
  ];
  for (const render of bad) assert.throws(render, (error) => isKubeHaproxyError(error));
});

test("a 1,000-slot backend renders compactly and is valid", async (t) => {
  const big: RenderedBackend = { backend: makeBackend("ns:big:80", [], { binds: [{ address: "127.0.0.1", port: 18080 }] }), slots: 1000, filled: new Map() };
  const text = renderConfig([big], { runtimeSocket: "/tmp/x.sock" });
  assert.match(text, /server-template s 1-1000 0\.0\.0\.0:0 disabled/);
  await assertValid(t, text);
});

test("the structure hash changes with structure, not with endpoints", () => {
  const options = { runtimeSocket: "/tmp/x.sock" };
  const hash = (rendered: RenderedBackend[]): string => structureHash(rendered.map((r) => r.backend), options);
  const base = hash([web, db]);
  assert.match(renderConfig([web, db], options), new RegExp(`^  setenv KUBE_HAPROXY_STRUCTURE ${base}$`, "m"), "the running worker carries it");
  assert.equal(hash([db, { ...web, filled: new Map(), slots: 64 }]), base, "endpoints and slots are not structure");
  assert.notEqual(hash([web]), base, "a removed Service port");
  assert.notEqual(hash([web, { ...db, backend: { ...db.backend, algorithm: "roundrobin" } }]), base, "an algorithm");
  assert.notEqual(hash([web, { ...db, backend: { ...db.backend, binds: [{ address: "::", port: 5433 }] } }]), base, "a port");
  assert.notEqual(hash([{ ...web, backend: { ...web.backend, affinityTimeoutSeconds: undefined } }, db]), base, "affinity");
  assert.notEqual(hash([web, { ...db, backend: { ...db.backend, healthCheck: { intervalMs: 1000 } } }]), base, "a health check interval");
  assert.notEqual(hash([web, { ...db, backend: { ...db.backend, healthCheck: undefined } }]), base, "no health check");
  const retries = (connectRetries: number): string => structureHash([web.backend, db.backend], { ...options, connectRetries });
  assert.equal(retries(3), retries(3));
  assert.notEqual(retries(0), retries(3), "connect retries");
});

test("connect retries: 0 fails a connection at once; whole numbers up to 20, nothing else", () => {
  assert.match(renderConfig([db], { runtimeSocket: "/tmp/x.sock", connectRetries: 0 }), /^ {2}retries 0\n {2}option redispatch 1$/m);
  assert.match(renderConfig([db], { runtimeSocket: "/tmp/x.sock", connectRetries: 20 }), /^ {2}retries 20$/m);
  for (const connectRetries of [-1, 21, 1.5, Number.NaN]) {
    assert.throws(() => renderConfig([db], { runtimeSocket: "/tmp/x.sock", connectRetries }), (error) => isKubeHaproxyError(error, "E_BAD_OPTION"), String(connectRetries));
  }
});

test("nbthread: rendered in global when set, left to HAProxy (one per core) when not; part of the structure", () => {
  assert.match(renderConfig([db], { runtimeSocket: "/tmp/x.sock", nbthread: 4 }), /^global\n(?: {2}\S.*\n)* {2}nbthread 4$/m);
  assert.doesNotMatch(renderConfig([db], { runtimeSocket: "/tmp/x.sock" }), /nbthread/);
  for (const nbthread of [0, 65, 1.5, Number.NaN]) {
    assert.throws(() => renderConfig([db], { runtimeSocket: "/tmp/x.sock", nbthread }), (error) => isKubeHaproxyError(error, "E_BAD_OPTION"), String(nbthread));
  }
  const threads = (nbthread: number | undefined): string => structureHash([db.backend], { runtimeSocket: "/tmp/x.sock", nbthread });
  assert.notEqual(threads(1), threads(4), "a reload applies a new thread count");
});

test("a Service port without binds is a plain backend, valid and silent", async (t) => {
  const text = renderConfig([{ ...web, backend: { ...web.backend, binds: [] } }], { runtimeSocket: "/tmp/x.sock" });
  assert.match(text, /^backend default:web:http$/m);
  assert.doesNotMatch(text, /^(listen|frontend) default:web:http|idle-close-on-response/m);
  await assertValid(t, text);
});

test("the simulated cluster's configuration, as `render` writes it: haproxy -c accepts it without a warning", async (t) => {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  const http = (s: Parameters<Parameters<typeof makeService>[3] & {}>[0]): void => void (s.metadata!.annotations!["kube-haproxy.io/mode"] = "http");
  cluster.api.upsert("services", makeService("default", "web", [{ name: "http", port: 18080 }, { name: "admin", port: 18081 }], (s) => {
    http(s);
    s.spec!.sessionAffinity = "ClientIP";
  }));
  cluster.api.upsert("services", makeService("db", "pg", [{ port: 15432 }], (s) => (s.metadata!.annotations!["kube-haproxy.io/algorithm"] = "leastconn")));
  cluster.api.upsert("services", makeService("default", "static", [{ port: 18082 }], (s) => (s.metadata!.annotations!["kube-haproxy.io/algorithm"] = "static-rr")));
  const pods = Array.from({ length: 40 }, (_, i) => ({ ip: `127.0.${Math.floor(i / 200)}.${(i % 200) + 2}` }));
  cluster.api.upsert("endpointslices", makeSlice("default", "web", "web-1", pods, [{ name: "http", port: 8080 }, { name: "admin", port: 9090 }]));
  cluster.api.upsert("endpointslices", makeSlice("db", "pg", "pg-1", [{ ip: "fd00::5" }], [{ port: 5432 }]));
  cluster.api.upsert("endpointslices", makeSlice("default", "static", "static-1", pods.slice(0, 3), [{ port: 8080 }]));
  const options = fastOptions(dir, cluster.kubeconfig, 16, { "stats-bind-address": "127.0.0.1:18404", user: "admin", passwd: "s3cret" });
  await renderFromCluster(options, silentLogger, {});
  const text = await readFile(options.config, "utf8");
  assert.equal(text.match(/^listen /gm)?.length, 4, text);
  await assertSilentlyValid(options.config);
});

// deploy/base/daemonset.yaml: uid 0, every capability dropped but NET_BIND_SERVICE, and
// KUBE_HAPROXY_ROOT_ON_PURPOSE set. setpriv gives this process the same bounding set.
const asDeployed = process.getuid?.() === 0 && existsSync("/usr/bin/setpriv");
test("as deployed (uid 0, only NET_BIND_SERVICE), HAProxy starts without a warning", { skip: !asDeployed && "needs root and setpriv" }, async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, "haproxy.cfg");
  const backend = makeBackend("default:web:http", [], { binds: [{ address: "127.0.0.1", port: await freePort() }] });
  await writeFile(config, renderConfig([{ backend, slots: 4, filled: new Map() }], { runtimeSocket: join(dir, "runtime.sock") }));
  const argv = ["--bounding-set", "-all,+net_bind_service", "--inh-caps", "-all", haproxyBinary(), "-W", "-S", join(dir, "master.sock"), "-f", config];
  const child = spawn("/usr/bin/setpriv", argv, { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, [ROOT_ON_PURPOSE]: "1" } });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
    await exited;
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  // The master says "Loading success." once the worker is up (2.6 and 3.x alike).
  await waitFor(() => output.includes("Loading success") || child.exitCode !== null, 15_000, `HAProxy started:\n${output}`);
  assert.match(output, /Loading success/, output);
  assert.deepEqual(output.split("\n").filter((line) => /\[(WARNING|ALERT)\]/.test(line)), [], output);
});
