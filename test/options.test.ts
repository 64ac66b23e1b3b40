// Flags: defaults, environment fallback, durations, one clear error per bad value.

import assert from "node:assert/strict";
import { test } from "node:test";
import { renderOptions } from "../src/compose.ts";
import { isKubeHaproxyError } from "../src/errors.ts";
import { HOSTILE_CREDENTIALS } from "./helpers.ts";
import { envName, flagsOf, parseDuration, redacted, resolveOptions } from "../src/options.ts";

test("durations, Go-style", () => {
  const cases: [string, number][] = [["0", 0], ["0s", 0], ["500ms", 500], ["5s", 5000], ["1m", 60000], ["2h22m", 8520000], ["1.5s", 1500], ["250us", 0.25]];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  for (const bad of ["", "5", "5x", "s", "1m 2s", "-1s"]) assert.throws(() => parseDuration(bad), bad);
});

test("defaults, then environment, then flags", () => {
  const defaults = resolveOptions({});
  assert.equal(defaults.proxyMode, "onlyfetch");
  assert.equal(defaults.slots, 8);
  assert.equal(defaults.socket, "/var/run/haproxy/runtime.sock");
  assert.equal(defaults.configSyncPeriodMs, 60_000);
  assert.equal(envName("min-sync-period"), "KUBE_HAPROXY_MIN_SYNC_PERIOD");
  const env = { KUBE_HAPROXY_SLOTS: "32", KUBE_HAPROXY_MIN_SYNC_PERIOD: "250ms", KUBE_HAPROXY_SOCKET: "127.0.0.1:9999" };
  const fromEnv = resolveOptions({}, env);
  assert.equal(fromEnv.slots, 32);
  assert.equal(fromEnv.minSyncPeriodMs, 250);
  assert.equal(fromEnv.socket, "127.0.0.1:9999");
  assert.equal(resolveOptions({ slots: "8" }, env).slots, 8, "a flag wins over the environment");
});

test("bad values name their flag", () => {
  const cases: [Record<string, string>, string][] = [
    [{ "proxy-mode": "ipvs" }, "--proxy-mode"],
    [{ slots: "0" }, "--slots"],
    [{ slots: "ten" }, "--slots"],
    [{ algorithm: "fastest" }, "--algorithm"],
    [{ "min-sync-period": "soon" }, "--min-sync-period"],
    [{ "bind-address": "localhost" }, "--bind-address"],
    [{ "metrics-bind-address": "nowhere" }, "--metrics-bind-address"],
    [{ "kube-api-content-type": "application/vnd.kubernetes.protobuf" }, "--kube-api-content-type"],
    [{ "kube-api-qps": "0" }, "--kube-api-qps"],
    [{ user: "admin" }, "--passwd"],
    [{ "log-level": "loud" }, "--log-level"],
    [{ "health-check": "yes" }, "--health-check"],
    [{ "health-check": "50ms" }, "--health-check"],
    [{ "connect-retries": "-1" }, "--connect-retries"],
    [{ "connect-retries": "21" }, "--connect-retries"],
    [{ nbthread: "0" }, "--nbthread"],
    [{ nbthread: "65" }, "--nbthread"],
    [{ nbthread: "max" }, "--nbthread"],
  ];
  for (const [flags, name] of cases) {
    assert.throws(
      () => resolveOptions(flags),
      (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message.startsWith(`${name}:`),
      JSON.stringify(flags),
    );
  }
});

test("nbthread: 4 by default (memory per slot grows with threads), a number or auto (HAProxy's own default)", () => {
  assert.equal(resolveOptions({}).nbthread, 4);
  assert.equal(resolveOptions({ nbthread: "1" }).nbthread, 1);
  assert.equal(resolveOptions({}, { KUBE_HAPROXY_NBTHREAD: "64" }).nbthread, 64);
  assert.equal(resolveOptions({ nbthread: "auto" }).nbthread, undefined);
  // Rendered at most as many as the CPUs the node gives.
  assert.equal(renderOptions(resolveOptions({}), 2).nbthread, 2);
  assert.equal(renderOptions(resolveOptions({}), 64).nbthread, 4);
  assert.equal(renderOptions(resolveOptions({ nbthread: "auto" }), 2).nbthread, undefined);
});

test("failover: connect retries 3 and no health checks by default; the flags change both", () => {
  const defaults = resolveOptions({});
  assert.equal(defaults.connectRetries, 3);
  assert.equal(defaults.healthCheck, undefined);
  assert.equal(resolveOptions({ "connect-retries": "0" }).connectRetries, 0);
  assert.deepEqual(resolveOptions({ "health-check": "true" }).healthCheck, { intervalMs: 500 });
  assert.deepEqual(resolveOptions({}, { KUBE_HAPROXY_HEALTH_CHECK: "2s" }).healthCheck, { intervalMs: 2000 });
  assert.equal(resolveOptions({ "health-check": "false" }).healthCheck, undefined);
  // status reads neither: a ConfigMap's value cannot break it.
  assert.equal(resolveOptions({}, { KUBE_HAPROXY_HEALTH_CHECK: "bad" }, "status").healthCheck, undefined);
});

test("reserved ports: the defaults, ranges, and our own listeners", () => {
  const defaults = resolveOptions({}).reservedPorts;
  for (const port of [22, 2379, 2380, 6443, 10250, 10256, 8404, 10266, 10267]) assert.ok(defaults.has(port), String(port));
  assert.ok(!defaults.has(80) && !defaults.has(443));
  const custom = resolveOptions({ "reserved-ports": "1-3,7", "stats-bind-address": "", "metrics-bind-address": "127.0.0.1:9100" }).reservedPorts;
  assert.deepEqual([...custom].sort((a, b) => a - b), [1, 2, 3, 7, 9100, 10267]);
  for (const bad of ["x", "3-1", "0", "70000", "1-"]) assert.throws(() => resolveOptions({ "reserved-ports": bad }), /--reserved-ports/);
});

test("the password never appears in what is logged", () => {
  const options = resolveOptions({ user: "admin", passwd: "hunter2" });
  assert.equal(options.passwd, "hunter2");
  assert.ok(!JSON.stringify(redacted(options)).includes("hunter2"));
});

test("a bad value from the environment names the variable, not the flag", () => {
  const cases: [Record<string, string>, string][] = [
    [{ KUBE_HAPROXY_SLOTS: "0" }, "KUBE_HAPROXY_SLOTS"],
    [{ KUBE_HAPROXY_SOCKET: "127.0.0.1:99999" }, "KUBE_HAPROXY_SOCKET"],
    [{ KUBE_HAPROXY_CONFIG_SYNC_PERIOD: "soon" }, "KUBE_HAPROXY_CONFIG_SYNC_PERIOD"],
    [{ KUBE_HAPROXY_USER: "a b", KUBE_HAPROXY_PASSWD: "x" }, "KUBE_HAPROXY_USER"],
    [{ KUBE_HAPROXY_EXPOSE: "some" }, "KUBE_HAPROXY_EXPOSE"],
  ];
  for (const [env, name] of cases) {
    assert.throws(() => resolveOptions({}, env), (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message.startsWith(`${name}: `), JSON.stringify(env));
  }
  // The same value on the command line names the flag, and a flag wins over a bad variable.
  assert.throws(() => resolveOptions({ slots: "0" }, { KUBE_HAPROXY_SLOTS: "0" }), /^KubeHaproxyError: --slots: /);
  assert.equal(resolveOptions({ slots: "4" }, { KUBE_HAPROXY_SLOTS: "0" }).slots, 4);
});

test("sockets: host:port in range with an IP, or a plain path; never empty", () => {
  for (const socket of ["/run/haproxy/runtime.sock", "127.0.0.1:9999", "[::1]:9999", "relative/runtime.sock"]) {
    assert.equal(resolveOptions({ socket }).socket, socket);
  }
  for (const [flag, value] of [
    ["socket", "127.0.0.1:99999"], ["socket", "127.0.0.1:0"], ["socket", ""], ["socket", "localhost:9999"], ["socket", "/run/my socket"],
    ["master-socket", ""], ["master-socket", "10.0.0.1:70000"],
  ] as const) {
    assert.throws(() => resolveOptions({ [flag]: value }), (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message.startsWith(`--${flag}: `), `${flag}=${value}`);
  }
});

test("--config-sync-period must be at least 1s (0s would switch drift repair off); --config and --haproxy-binary never empty", () => {
  assert.equal(resolveOptions({ "config-sync-period": "1s" }).configSyncPeriodMs, 1_000);
  for (const [flag, value] of [["config-sync-period", "0s"], ["config-sync-period", "500ms"], ["config", ""], ["haproxy-binary", ""], ["timeout", "0s"]] as const) {
    assert.throws(() => resolveOptions({ [flag]: value }), (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message.startsWith(`--${flag}: `), `${flag}=${value}`);
  }
});

test("--user and --passwd: every hostile kind is refused, for every command that takes them", () => {
  for (const command of ["run", "render"] as const) {
    for (const [kind, value] of HOSTILE_CREDENTIALS) {
      for (const [flag, flags] of [["user", { user: value, passwd: "secret" }], ["passwd", { user: "admin", passwd: value }]] as const) {
        assert.throws(
          () => resolveOptions(flags, {}, command),
          (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message === `--${flag}: may hold only printable characters without spaces, quotes, '#' or '\\'`,
          `${command} --${flag} with a ${kind}`,
        );
      }
    }
    assert.equal(resolveOptions({ user: "admin", passwd: "S3cr3t!$%&()*+,-./:;<=>?@[]^_`{|}~" }, {}, command).passwd, "S3cr3t!$%&()*+,-./:;<=>?@[]^_`{|}~");
  }
});

test("--expose and --take-over", () => {
  assert.equal(resolveOptions({}).expose, "labelled");
  assert.equal(resolveOptions({ expose: "all" }).expose, "all");
  assert.equal(resolveOptions({}).takeOver, false);
  assert.equal(resolveOptions({ "take-over": "true" }).takeOver, true);
  assert.throws(() => resolveOptions({ "take-over": "yes" }), /--take-over: must be one of false, true/);
});

test("a command reads only its own flags from the environment", () => {
  const env = { KUBE_HAPROXY_CONFIG_SYNC_PERIOD: "0s", KUBE_HAPROXY_SLOTS: "0", KUBE_HAPROXY_SOCKET: "127.0.0.1:9000" };
  assert.throws(() => resolveOptions({}, env, "run"), /KUBE_HAPROXY_SLOTS/);
  // render takes no --config-sync-period; status only --socket, and --proxy-mode and --config for local mode's claims.json.
  assert.throws(() => resolveOptions({}, { ...env, KUBE_HAPROXY_SLOTS: "8" }, "run"), /KUBE_HAPROXY_CONFIG_SYNC_PERIOD/);
  assert.equal(resolveOptions({}, { ...env, KUBE_HAPROXY_SLOTS: "8" }, "render").configSyncPeriodMs, 60_000);
  const status = resolveOptions({}, env, "status");
  assert.equal(status.socket, "127.0.0.1:9000");
  assert.equal(status.slots, 8);
  assert.deepEqual(flagsOf("status"), ["proxy-mode", "socket", "config"]);
  assert.ok(flagsOf("render").includes("timeout") && !flagsOf("render").includes("master-socket"));
  assert.ok(flagsOf("run").includes("take-over") && !flagsOf("run").includes("timeout"));
});

test("mesh: --nodeport-addresses and --cluster-cidr, canonical CIDRs of either family, from the flag or the environment; mesh only", () => {
  const mesh = { "proxy-mode": "mesh", "service-cidr": "10.96.0.0/12" };
  for (const [flag, field, variable] of [
    ["nodeport-addresses", "nodePortAddresses", "KUBE_HAPROXY_NODEPORT_ADDRESSES"],
    ["cluster-cidr", "clusterCidrs", "KUBE_HAPROXY_CLUSTER_CIDR"],
  ] as const) {
    assert.deepEqual(resolveOptions(mesh, {}, "run")[field], []);
    assert.deepEqual(resolveOptions({ ...mesh, [flag]: "192.168.0.0/16, FD00:0::/64" }, {}, "run")[field], ["192.168.0.0/16", "fd00::/64"]);
    assert.deepEqual(resolveOptions(mesh, { [variable]: "10.0.0.0/8" }, "capture")[field], ["10.0.0.0/8"]);
    for (const bad of ["10.0.0.0", "10.0.0.0/33", "eth0", "primary"]) {
      assert.throws(() => resolveOptions({ ...mesh, [flag]: bad }, {}, "run"), (e: unknown) => isKubeHaproxyError(e, "E_BAD_OPTION") && e.message.includes(`--${flag}`), bad);
    }
    assert.throws(() => resolveOptions({ "proxy-mode": "local", "service-cidr": "10.96.0.0/12", [flag]: "10.0.0.0/8" }, {}, "run"), /mesh mode only/);
  }
  assert.throws(() => resolveOptions({ "proxy-mode": "mesh" }, {}, "run"), /mesh mode needs the cluster's Service CIDR/);
});
