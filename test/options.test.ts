// Flags: defaults, environment fallback, durations, one clear error per bad value.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { envName, parseDuration, redacted, resolveOptions } from "../src/options.ts";

test("durations, Go-style", () => {
  const cases: [string, number][] = [["0", 0], ["0s", 0], ["500ms", 500], ["5s", 5000], ["1m", 60000], ["2h22m", 8520000], ["1.5s", 1500], ["250us", 0.25]];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  for (const bad of ["", "5", "5x", "s", "1m 2s", "-1s"]) assert.throws(() => parseDuration(bad), bad);
});

test("defaults, then environment, then flags", () => {
  const defaults = resolveOptions({});
  assert.equal(defaults.proxyMode, "onlyfetch");
  assert.equal(defaults.slots, 16);
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
  ];
  for (const [flags, name] of cases) {
    assert.throws(
      () => resolveOptions(flags),
      (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && error.message.startsWith(`${name}:`),
      JSON.stringify(flags),
    );
  }
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
