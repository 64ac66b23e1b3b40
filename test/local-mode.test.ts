// Local mode end to end, in network namespaces: the real sidecar (startSidecar) in local mode,
// a real HAProxy from `render`'s pool configuration, the fake API server, pods behind veths, the
// capture in the node's kernel, kube-proxy's iptables stand-in beside it (test/netns-node.ts).
// Services come, change and go with 0 reloads; only pool exhaustion reloads, once, hitlessly.

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { readCapture } from "../src/capture/index.ts";
import { poolTarget } from "../src/dataplane/pool.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { makeService } from "../src/sim/objects.ts";
import { CLI, waitFor } from "./helpers.ts";
import { LOCAL_TOOLS, PODS, onNodes, service, slice, startLocalNode, until } from "./local-node.ts";
import { bodies, netnsTestOptions } from "./netns.ts";
import { SERVICE_CIDRS, STANDIN } from "./netns-node.ts";

const FIRST_PORT = 15200;

test("local mode: the sidecar serves ClusterIPs through the pool, Services come and go with 0 reloads", netnsTestOptions(LOCAL_TOOLS), async (t: TestContext) => {
  const local = await startLocalNode(t, {}, (api) => {
    api.upsert("services", service("web", STANDIN.web.ip, [80]));
    api.upsert("endpointslices", slice("web", [80]));
    api.upsert("services", service("control", "198.18.128.30", [80]));
    api.upsert("endpointslices", slice("control", [80]));
    // DNS: UDP is skipped, TCP served; the UDP query must still reach kube-proxy's stand-in.
    api.upsert("services", makeService("kube-system", "kube-dns", [{ name: "dns", port: 53, protocol: "UDP" }], (s) => (s.spec!.clusterIP = STANDIN.dns.ip)));
  }, FIRST_PORT);
  const { api, agents, node, nft, haproxy } = local;
  const { client } = agents;
  const reloads = await reloadCount(haproxy.masterSocket);

  await t.test("a pod's and the node's connections to a ClusterIP reach the ready pods", async () => {
    assert.deepEqual(await bodies(client, STANDIN.web.ip, 80), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(agents.node, STANDIN.web.ip, 80), new Set(["pod1", "pod2"]));
  });

  await t.test("UDP to a ClusterIP still reaches kube-proxy's stand-in", async () => {
    const outcome = await client.udp(STANDIN.dns.ip, STANDIN.dns.port, "q");
    assert.equal(outcome.kind, "response", JSON.stringify(outcome));
  });

  await t.test("a Service created after start is served with 0 reloads; a port added to it too; deleted: refused", async () => {
    assert.equal((await client.http("198.18.128.11", 80)).kind, "refused", "before: not captured, the stand-in rejects it");
    api.upsert("services", service("late", "198.18.128.11", [80]));
    api.upsert("endpointslices", slice("late", [80]));
    await until(client, "198.18.128.11", 80, "response", "late served");
    assert.deepEqual(await bodies(client, "198.18.128.11", 80), new Set(["pod1", "pod2"]));

    api.upsert("services", service("late", "198.18.128.11", [80, 81]));
    api.upsert("endpointslices", slice("late", [80, 81]));
    await until(client, "198.18.128.11", 81, "response", "late:81 served");
    assert.deepEqual(await bodies(client, "198.18.128.11", 81), new Set(["pod1", "pod2"]));
    assert.equal(await reloadCount(haproxy.masterSocket), reloads, "no reload for a new Service or port");

    api.remove("services", "default", "late");
    await until(client, "198.18.128.11", 80, "refused", "late refused after delete");
    await until(client, "198.18.128.11", 81, "refused", "late:81 refused after delete");
    assert.equal(await reloadCount(haproxy.masterSocket), reloads, "no reload for a deleted Service");
  });

  await t.test("internalTrafficPolicy Local: only this node's endpoints; none on this node: dropped (kube-proxy), never other nodes'", async () => {
    api.upsert("services", service("itp", "198.18.128.12", [80], (s) => (s.spec!.internalTrafficPolicy = "Local")));
    api.upsert("endpointslices", slice("itp", [80], PODS, onNodes(["node-a", "node-b"])));
    await until(client, "198.18.128.12", 80, "response", "itp served");
    assert.deepEqual(await bodies(client, "198.18.128.12", 80), new Set(["pod1"]));
    api.upsert("endpointslices", slice("itp", [80], PODS, onNodes(["node-b", "node-c"])));
    await waitFor(async () => (await client.http("198.18.128.12", 80, 1_000)).kind === "timeout", 15_000, "itp without local endpoints: dropped");
    assert.equal(await reloadCount(haproxy.masterSocket), reloads);
  });

  await t.test("a sidecar restart keeps every claim: same map elements, 0 reloads, still served", async () => {
    const before = await readCapture(nft);
    await local.restartSidecar();
    assert.deepEqual(await readCapture(nft), before);
    assert.deepEqual(await bodies(client, STANDIN.web.ip, 80), new Set(["pod1", "pod2"]));
    assert.equal(await reloadCount(haproxy.masterSocket), reloads);
  });

  await t.test("pool exhaustion: exactly one reload, and a Service under load meanwhile fails no request", async () => {
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (!stop) {
        const outcome = await client.http("198.18.128.30", 80);
        if (outcome.kind === "response") ok++;
        else failures.push(JSON.stringify(outcome));
      }
    })();
    const count = poolTarget(3) + 2; // more than the default group's free backends
    for (let i = 0; i < count; i++) {
      api.upsert("services", service(`grow${i}`, `198.18.129.${i + 1}`, [80]));
      api.upsert("endpointslices", slice(`grow${i}`, [80]));
    }
    for (const i of [0, count - 1]) await until(client, `198.18.129.${i + 1}`, 80, "response", `grow${i} served`);
    await local.sidecar.dataplane.whenSynced();
    for (let i = 0; i < count; i++) assert.deepEqual(await bodies(client, `198.18.129.${i + 1}`, 80, 2), new Set(["pod1", "pod2"]), `grow${i}`);
    stop = true;
    await load;
    assert.equal(await reloadCount(haproxy.masterSocket), reloads + 1);
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
  });

  await t.test("capture twice leaves one set of rules and keeps the elements; cleanup leaves nothing", async () => {
    await local.sidecar.stop();
    const list = () => node.exec(["nft", "list", "ruleset"]);
    const flags = ["--service-cidr", SERVICE_CIDRS.join(","), "--capture-port", String(FIRST_PORT)];
    const elements = await readCapture(nft);
    await node.exec([process.execPath, CLI, "capture", ...flags]);
    const once = await list();
    await node.exec([process.execPath, CLI, "capture", ...flags]);
    assert.equal(await list(), once);
    assert.equal(once.match(/table inet kube-haproxy/g)?.length, 1);
    assert.deepEqual(await readCapture(nft), elements);
    assert.deepEqual(await bodies(client, STANDIN.web.ip, 80, 2), new Set(["pod1", "pod2"]));
    await node.exec([process.execPath, CLI, "cleanup"]);
    assert.doesNotMatch(await list(), /kube-haproxy/);
    assert.equal(await readCapture(nft), undefined);
  });
});
