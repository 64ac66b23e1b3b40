// Local mode's data path end to end, in network namespaces, with a real HAProxy (a hand-written
// configuration until local mode has its renderer): pods and the node itself reach ClusterIPs
// through the capture, Service ports come and go with 0 reloads, and what we do not serve (UDP,
// other TCP ports) still reaches kube-proxy's stand-in. See test/netns-node.ts for the topology.
// Runs with the HAProxy under test (KUBE_HAPROXY_TEST_HAPROXY, like every test; CI runs the
// suite once per version).

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { test, type TestContext } from "node:test";
import { cleanupCapture, installCapture, syncCapture, type CaptureConfig, type CaptureEntry } from "../src/capture/index.ts";
import { setServerAddr, setServerState, type RuntimeCommand } from "../src/haproxy/commands.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { haproxyBinary, startHaproxy } from "../src/sim/haproxy.ts";
import { tempDir } from "./helpers.ts";
import { bodies, createLab, netnsTestOptions } from "./netns.ts";
import { SERVICE_CIDRS, STANDIN, buildNode } from "./netns-node.ts";

const TOOLS = ["ip", "nft", "iptables"];
const BINARIES = [haproxyBinary()];

const WEB6 = { ip: "fd00:198:18:128::a", port: 80 };
const LATE = { ip: "198.18.128.11", port: 8080 }; // a Service port created while everything runs
const BY_DST = { ip: "198.18.128.12", port: 80, ip6: "fd00:198:18:128::c" }; // the single-listener form

const config: CaptureConfig = { listenPorts: { first: 15100, last: 15110 }, serviceCidrs: [...SERVICE_CIDRS] };
const served: CaptureEntry[] = [
  { ...STANDIN.web, listenPort: 15100 },
  { ...WEB6, listenPort: 15101 },
];

// One `listen` per pool backend, one listener port each; plus the single-listener form, which
// routes on the original destination through a map (IPv4 only: see src/capture/index.ts).
function haproxyConfig(dir: string): string {
  const pool = (name: string, port: number, servers: string[]): string =>
    [`listen ${name}`, `  bind 0.0.0.0:${port}`, `  bind :::${port} v6only`, ...servers.map((s, i) => `  server s${i + 1} ${s}`), "  server-template t 1-2 0.0.0.0:0 disabled", ""].join("\n");
  return `global
  stats socket ${dir}/runtime.sock mode 600 level admin
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
${pool("pool0", 15100, ["198.18.2.2:8080", "198.18.3.2:8080"])}
${pool("pool1", 15101, ["[fd00:198:18:2::2]:8080", "[fd00:198:18:3::2]:8080"])}
${pool("pool2", 15102, [])}
frontend by-destination
  mode http
  bind 0.0.0.0:15110
  bind :::15110 v6only
  tcp-request connection set-var(sess.dport) dst_port
  use_backend %[dst,concat(:,sess.dport),map(${dir}/by-destination.map,no-route)]
backend no-route
  mode http
  http-request return status 421 content-type text/plain lf-string "no route for %[dst]:%[dst_port]"
backend web-http
  mode http
  server-template t 1-2 0.0.0.0:0 disabled
`;
}


function mapCommand(verb: "add" | "del", file: string, key: string, value = ""): RuntimeCommand {
  return { line: `${verb} map ${file} ${key}${value && ` ${value}`}`, expect: "empty" };
}

for (const binary of BINARIES) {
  test(`local mode data path with ${binary}`, netnsTestOptions(TOOLS), async (t: TestContext) => {
    const lab = await createLab(t, TOOLS);
    const { node, agents, standinRules, iptablesSave } = await buildNode(lab);
    const nft = { command: node.wrap(["nft"]) };
    const dir = await tempDir(t, "kh-capture-");
    await installCapture(config, nft);
    await syncCapture(config, served, nft);
    await writeFile(`${dir}/by-destination.map`, "");
    const haproxy = await startHaproxy({ dir, config: haproxyConfig(dir), binary: await lab.wrapper(node, binary, dir) });
    t.after(() => haproxy.kill());
    const runtime = new RuntimeClient({ address: haproxy.runtimeSocket });
    t.after(() => runtime.close());
    await runtime.waitConnected();
    const reloads = await reloadCount(haproxy.masterSocket);
    const { client, node: self, bare } = agents;

    await t.test("a pod's connection to a ClusterIP reaches both pods, ahead of kube-proxy's rule for it", async () => {
      assert.deepEqual(await bodies(client, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
    });

    await t.test("the node's own connection to a ClusterIP is captured too (output hook)", async () => {
      assert.deepEqual(await bodies(self, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
    });

    await t.test("IPv6: pod and node reach an IPv6 ClusterIP's endpoints", async () => {
      assert.deepEqual(await bodies(client, WEB6.ip, WEB6.port), new Set(["pod1-v6", "pod2-v6"]));
      assert.deepEqual(await bodies(self, WEB6.ip, WEB6.port), new Set(["pod1-v6", "pod2-v6"]));
    });

    await t.test("a Service port created at runtime answers with 0 reloads (set server, then its element)", async () => {
      assert.equal((await client.http(LATE.ip, LATE.port)).kind, "refused", "before: not captured, kube-proxy's stand-in rejects it");
      const commands = ["198.18.2.2", "198.18.3.2"].flatMap((ip, i) => [setServerAddr("pool2", `t${i + 1}`, ip, 8080), setServerState("pool2", `t${i + 1}`, "ready")]);
      for (const result of await runtime.executeAll(commands)) assert.ok(result.ok, JSON.stringify(result));
      await syncCapture(config, [...served, { ...LATE, listenPort: 15102 }], nft);
      assert.deepEqual(await bodies(client, LATE.ip, LATE.port), new Set(["pod1", "pod2"]));
      assert.deepEqual(await bodies(self, LATE.ip, LATE.port), new Set(["pod1", "pod2"]));
      assert.equal(await reloadCount(haproxy.masterSocket), reloads);
    });

    await t.test("a deleted Service port is refused at once (element out, then slots to maint), 0 reloads", async () => {
      await syncCapture(config, served, nft);
      assert.equal((await client.http(LATE.ip, LATE.port)).kind, "refused");
      assert.equal((await self.http(LATE.ip, LATE.port)).kind, "refused");
      for (const result of await runtime.executeAll([setServerState("pool2", "t1", "maint"), setServerState("pool2", "t2", "maint")])) assert.ok(result.ok);
      assert.equal(await reloadCount(haproxy.masterSocket), reloads);
    });

    await t.test("UDP to a ClusterIP still reaches kube-proxy's stand-in while the capture runs", async () => {
      assert.deepEqual(await client.udp(STANDIN.dns.ip, STANDIN.dns.port, "query"), { kind: "response", status: 0, body: "dns:query" });
      assert.deepEqual(await self.udp(STANDIN.dns.ip, STANDIN.dns.port, "query"), { kind: "response", status: 0, body: "dns:query" });
    });

    await t.test("a TCP Service port we do not serve falls through to kube-proxy's stand-in", async () => {
      assert.deepEqual(await bodies(client, STANDIN.other.ip, STANDIN.other.port, 2), new Set(["standin"]));
      assert.deepEqual(await bodies(self, STANDIN.other.ip, STANDIN.other.port, 2), new Set(["standin"]));
    });

    await t.test("a listener port reached without the capture is refused (the guard)", async () => {
      assert.equal((await client.http("198.18.1.1", 15100)).kind, "refused");
      assert.equal((await client.http("fd00:198:18:1::1", 15101)).kind, "refused");
      assert.equal((await self.http("127.0.0.1", 15100)).kind, "refused");
      assert.equal((await self.http("::1", 15101)).kind, "refused");
    });

    await t.test("single listener, map on the original destination: add map serves IPv4, IPv6 sees the node's address", async () => {
      const map = `${dir}/by-destination.map`;
      const commands = [
        ...["198.18.2.2", "198.18.3.2"].flatMap((ip, i) => [setServerAddr("web-http", `t${i + 1}`, ip, 8080), setServerState("web-http", `t${i + 1}`, "ready")]),
        mapCommand("add", map, `${BY_DST.ip}:${BY_DST.port}`, "web-http"),
        mapCommand("add", map, `${BY_DST.ip6}:${BY_DST.port}`, "web-http"),
      ];
      for (const result of await runtime.executeAll(commands)) assert.ok(result.ok, JSON.stringify(result));
      await syncCapture(config, [...served, { ip: BY_DST.ip, port: BY_DST.port, listenPort: 15110 }, { ip: BY_DST.ip6, port: BY_DST.port, listenPort: 15110 }], nft);
      assert.deepEqual(await bodies(client, BY_DST.ip, BY_DST.port), new Set(["pod1", "pod2"]));
      assert.deepEqual(await bodies(self, BY_DST.ip, BY_DST.port), new Set(["pod1", "pod2"]));
      // HAProxy asks for the original destination only for IPv4 (SO_ORIGINAL_DST).
      assert.deepEqual(await client.http(BY_DST.ip6, BY_DST.port), { kind: "response", status: 421, body: "no route for fd00:198:18:1::1:15110" });
      assert.deepEqual(await self.http(BY_DST.ip6, BY_DST.port), { kind: "response", status: 421, body: "no route for ::1:15110" });

      assert.ok((await runtime.executeAll([mapCommand("del", map, `${BY_DST.ip}:${BY_DST.port}`)]))[0]!.ok);
      assert.deepEqual(await client.http(BY_DST.ip, BY_DST.port), { kind: "response", status: 421, body: `no route for ${BY_DST.ip}:${BY_DST.port}` });
      await syncCapture(config, served, nft);
      assert.equal((await client.http(BY_DST.ip, BY_DST.port)).kind, "refused", "element gone: kube-proxy's stand-in rejects it");
      assert.equal(await reloadCount(haproxy.masterSocket), reloads);
    });

    await t.test("a pod on an unnumbered veth: REDIRECT drops it, DNAT to the interface address serves it", async () => {
      assert.equal((await bare.http(STANDIN.web.ip, STANDIN.web.port, 1_500)).kind, "timeout");
      assert.deepEqual(await installCapture({ ...config, listenAddresses: { ipv4: "198.18.9.1" } }, nft), { kept: 2, dropped: 0 });
      assert.deepEqual(await bodies(bare, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
      assert.deepEqual(await bodies(client, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
      assert.deepEqual(await bodies(self, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
      assert.equal((await client.http("198.18.9.1", 15100)).kind, "refused", "the guard holds in DNAT mode too");
    });

    await t.test("capture again while serving: one set of rules, every Service still served", async () => {
      await installCapture(config, nft);
      const once = await node.exec(["nft", "list", "table", "inet", "kube-haproxy"]);
      assert.deepEqual(await installCapture(config, nft), { kept: 2, dropped: 0 });
      assert.equal(await node.exec(["nft", "list", "table", "inet", "kube-haproxy"]), once);
      assert.deepEqual(await bodies(client, STANDIN.web.ip, STANDIN.web.port), new Set(["pod1", "pod2"]));
      assert.deepEqual(await bodies(client, WEB6.ip, WEB6.port), new Set(["pod1-v6", "pod2-v6"]));
    });

    await t.test("cleanup leaves no rule of ours, kube-proxy's untouched: its rule serves the ClusterIP again", async () => {
      await cleanupCapture(nft);
      assert.doesNotMatch(await node.exec(["nft", "list", "ruleset"]), /kube-haproxy/);
      assert.equal(await iptablesSave(), standinRules);
      assert.deepEqual(await bodies(client, STANDIN.web.ip, STANDIN.web.port, 2), new Set(["standin"]));
      assert.deepEqual(await client.udp(STANDIN.dns.ip, STANDIN.dns.port, "query"), { kind: "response", status: 0, body: "dns:query" });
      assert.equal(await reloadCount(haproxy.masterSocket), reloads);
    });
  });
}
