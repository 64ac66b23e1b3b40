// The pure pieces of haproxy/: command builders, reply checks, names, state parsing (framing: reply.test.ts).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  addServer,
  addServerRefusal,
  checkAddress,
  checkName,
  checkPort,
  delServerRefusal,
  parseInfoPid,
  parseShowEnv,
  setServerAddr,
  setServerState,
  showEnv,
  showServersState,
} from "../src/haproxy/commands.ts";
import { parseSlotName, slotName } from "../src/haproxy/names.ts";
import { backendName } from "../src/model.ts";
import { checkReply } from "../src/haproxy/reply.ts";
import { ServersStateReader, parseServersState, stateOf, type ServerRecord } from "../src/haproxy/servers-state.ts";
import { parseShowProc } from "../src/haproxy/master.ts";
import { isKubeHaproxyError } from "../src/errors.ts";

describe("command builders", () => {
  test("build the exact runtime lines", () => {
    assert.equal(setServerAddr("default:web:80", "s3", "10.1.2.3", 8080).line, "set server default:web:80/s3 addr 10.1.2.3 port 8080");
    assert.equal(setServerAddr("b", "s1", "fd00::1", 80).line, "set server b/s1 addr fd00::1 port 80");
    assert.equal(setServerState("b", "s1", "drain").line, "set server b/s1 state drain");
    assert.equal(showServersState().line, "show servers state");
    assert.equal(showServersState("b").line, "show servers state b");
    assert.equal(addServer("b", "d5", "fd00::1", 80).line, "add server b/d5 [fd00::1]:80 disabled");
  });

  const injections: [string, () => unknown][] = [
    ["semicolon in backend", () => setServerState("a;shutdown sessions server b/s1", "s1", "ready")],
    ["space in server", () => setServerState("a", "s1 state maint", "ready")],
    ["newline in backend", () => setServerState("a\nshow info", "s1", "ready")],
    ["backslash", () => setServerState("a\\", "s1", "ready")],
    ["slash in server", () => setServerState("a", "x/y", "ready")],
    ["empty name", () => checkName("backend", "")],
    ["too long name", () => checkName("backend", "a".repeat(101))],
    ["address with a command", () => setServerAddr("a", "s1", "1.2.3.4;show info", 80)],
    ["hostname as address", () => setServerAddr("a", "s1", "evil.example", 80)],
    ["IPv6 zone", () => checkAddress("fe80::1%eth0")],
    ["port 0", () => checkPort(0)],
    ["port 65536", () => checkPort(65536)],
    ["fractional port", () => checkPort(80.5)],
    ["unknown state", () => setServerState("a", "s1", "up" as "ready")],
  ];
  for (const [name, build] of injections) {
    test(`refuses ${name}`, () => {
      assert.throws(build, (error) => isKubeHaproxyError(error, "E_INVALID_IDENTIFIER"));
    });
  }
});

describe("checkReply", () => {
  const addr = setServerAddr("b", "s1", "10.0.0.1", 80);
  const state = setServerState("b", "s1", "ready");
  const cases: [string, ReturnType<typeof setServerAddr>, string, boolean][] = [
    ["2.6 addr and port", addr, "IP changed from '0.0.0.0' to '10.0.0.1', port changed from '+0' to '80' by 'stats socket command'", true],
    ["2.6 no change", addr, "no need to change the addr, no need to change the port by 'stats socket command'", true],
    ["3.x port only", addr, "port changed from '80' to '81' by 'stats socket command'", true],
    ["3.x nothing", addr, "nothing changed", true],
    ["addr error", addr, "Invalid addr '10.0.0.x' for server 's1'.", false],
    ["no such server", state, "No such server.", false],
    ["state ok", state, "", true],
    ["unexpected text on state", state, "something else", false],
    ["unknown command 2.6", showServersState(), "Unknown command, but maybe one of the following ones is a better match:", false],
    ["unknown command 2.7+", showServersState(), "Unknown command: 'shw', but maybe", false],
    ["permission", state, "Permission denied", false],
    ["add server with warning", addServer("b", "d1", "10.0.0.1", 80), "[WARNING] something\nNew server registered.", true],
  ];
  for (const [name, command, body, ok] of cases) {
    test(name, () => {
      const error = checkReply(command, body);
      assert.equal(error === undefined, ok);
      if (error) {
        assert.equal(error.code, "E_COMMAND_REJECTED");
        assert.equal(error.reply, body);
        assert.equal(error.command, command.line);
      }
    });
  }
});

describe("names", () => {
  test("namespace:name:port, unique and valid", () => {
    assert.equal(backendName("default", "web", "http"), "default:web:http");
    assert.equal(backendName("default", "web", 80), "default:web:80");
    // "a-b"/"c" and "a"/"b-c" would collide with a '-' separator; ':' cannot appear in k8s names.
    assert.notEqual(backendName("a-b", "c", 80), backendName("a", "b-c", 80));
  });

  test("long names are cut to 100 characters with a distinguishing hash", () => {
    const ns = "n".repeat(63);
    const a = backendName(ns, "s".repeat(63), "http");
    const b = backendName(ns, "s".repeat(63), "https");
    assert.equal(a.length, 100);
    assert.notEqual(a, b);
    assert.equal(backendName(ns, "s".repeat(63), "http"), a);
  });

  test("slot names", () => {
    assert.equal(slotName(7), "s7");
    assert.equal(slotName(9, true), "d9");
    assert.deepEqual(parseSlotName("s7"), { slot: 7, dynamic: false });
    assert.deepEqual(parseSlotName("d12"), { slot: 12, dynamic: true });
    assert.equal(parseSlotName("s07"), undefined);
    assert.equal(parseSlotName("web1"), undefined);
  });
});

describe("show servers state", () => {
  // Captured from HAProxy 2.6.12 on this machine (DESIGN.md).
  const body = [
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
    "3 be:x:80 1 s1 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 9999 - 0 0 - - 0",
    "3 be:x:80 2 s2 127.0.0.2 2 4 1 1 0 1 0 0 8 0 0 0 - 81 - 0 0 - - 0",
    "3 be:x:80 3 s3 0.0.0.0 2 12 1 1 0 1 0 0 8 0 0 0 - 0 - 0 0 - - 0",
    "3 be:x:80 4 s4 0.0.0.0 0 5 1 1 1 1 0 0 8 0 0 0 - 0 - 0 0 - - 0",
  ].join("\n");

  test("parses records and admin states", () => {
    const records = parseServersState(body);
    assert.equal(records.length, 4);
    assert.deepEqual(records[1], { backend: "be:x:80", server: "s2", address: "127.0.0.2", port: 81, operationalState: 2, adminState: 4, weight: 1 });
    assert.deepEqual(records.map(stateOf), ["ready", "ready", "drain", "maint"]);
  });

  test("an empty process or unknown backend has no records", () => {
    assert.deepEqual(parseServersState("1"), []);
    assert.deepEqual(parseServersState(""), []);
  });

  test("an unreadable reply throws", () => {
    assert.throws(() => parseServersState("No such backend."));
  });

  test("read as it arrives: the same records whichever way the chunks cut lines, header and numbers (issue 14)", () => {
    const whole = parseServersState(body);
    for (const size of [1, 2, 3, 7, 50, 151]) {
      const records: ServerRecord[] = [];
      const reader = new ServersStateReader((record) => records.push({ ...record }));
      for (let at = 0; at < body.length; at += size) reader.push(body.slice(at, at + size));
      reader.end();
      assert.deepEqual(records, whole, `chunks of ${size}`);
    }
  });

  test("read as it arrives: an error reply or a runaway line is kept and thrown at the end, the rest ignored", () => {
    const refused = new ServersStateReader(() => assert.fail("no record from an error reply"));
    refused.push("Permission denied\n");
    refused.push(body);
    assert.throws(() => refused.end(), (error: unknown) => isKubeHaproxyError(error, "E_UNREADABLE_REPLY") && /Permission denied/.test((error as Error).message));
    const runaway = new ServersStateReader(() => {});
    runaway.push(body.slice(0, 200));
    for (let i = 0; i < 100; i++) runaway.push("x".repeat(1024));
    assert.throws(() => runaway.end(), /longer than/);
  });
});

test("parseShowProc reads master and workers, and the master's count of workers that failed to start", () => {
  const text = "#<PID>          <type>          <reloads>       <uptime>        <version>\n3262            master          1 [failed: 2]   0d00h00m01s     2.6.12\n# workers\n3275            worker          0               0d00h00m00s     2.6.12\n# programs\n";
  assert.deepEqual(parseShowProc(text), [
    { pid: 3262, role: "master", reloads: 1, failed: 2 },
    { pid: 3275, role: "worker", reloads: 0, failed: 0 },
  ]);
});

test("show env and show info replies, and del/add server refusals by their text", () => {
  assert.equal(showEnv("KUBE_HAPROXY_STRUCTURE").line, "show env KUBE_HAPROXY_STRUCTURE");
  assert.throws(() => showEnv("X; shutdown"), (error) => isKubeHaproxyError(error, "E_INVALID_IDENTIFIER"));
  assert.equal(parseShowEnv("KUBE_HAPROXY_STRUCTURE", "KUBE_HAPROXY_STRUCTURE=0123abcd"), "0123abcd");
  assert.equal(parseShowEnv("KUBE_HAPROXY_STRUCTURE", "Variable not found"), undefined);
  assert.equal(parseInfoPid("Name: HAProxy\nVersion: 2.6.12\nPid: 7133\nUptime: 0d"), 7133);
  assert.equal(delServerRefusal("Server still has connections attached to it, cannot remove it."), "has-connections");
  assert.equal(delServerRefusal("Only servers in maintenance mode can be deleted."), "other");
  assert.equal(delServerRefusal("No such server."), "other");
  assert.equal(addServerRefusal("Backend must use a dynamic load balancing to support dynamic servers."), "not-dynamic");
  assert.equal(addServerRefusal("Already exists a server with the same name in backend."), "other");
});
