// Local mode end to end: a Service port without endpoints is refused by the kernel at once, as
// kube-proxy does (a TCP reset: "connection refused", not a timeout, not a connection HAProxy
// accepts and closes); with internalTrafficPolicy Local and endpoints on other nodes only, it is
// dropped (kube-proxy's verdict). Endpoints come and go with 0 reloads. The IPv6 ClusterIP proves
// it is our rule: kube-proxy's stand-in rejects only the IPv4 Service CIDR (test/netns-node.ts),
// and without a rule an IPv6 ClusterIP times out.

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { readCaptureState } from "../src/capture/index.ts";
import { waitFor } from "./helpers.ts";
import { LOCAL_TOOLS, onNodes, service, slice, startLocalNode, until } from "./local-node.ts";
import { bodies, netnsTestOptions } from "./netns.ts";

const EMPTY = { ipv4: "198.18.128.50", ipv6: "fd00:198:18:128::32" };
const PODS_V6 = [{ ip: "fd00:198:18:2::2" }, { ip: "fd00:198:18:3::2" }];
const ITP = "fd00:198:18:128::33";

test("local mode: no endpoints → refused at once; endpoints come → served; go → refused again; 0 reloads", netnsTestOptions(LOCAL_TOOLS), async (t: TestContext) => {
  const local = await startLocalNode(t, {}, (api) => {
    api.upsert("services", service("empty", [EMPTY.ipv4, EMPTY.ipv6], [80]));
  }, 15_400);
  const { api, agents, nft } = local;
  const { client } = agents;
  const reloads = await local.reloads();
  const noEndpoints = async (): Promise<string[]> => ((await readCaptureState(nft))?.noEndpoints ?? []).map((e) => `${e.ip} ${e.port} ${e.verdict}`).sort();

  await t.test("a Service without endpoints: both ClusterIPs refused, by the no-endpoint elements", async () => {
    assert.deepEqual(await noEndpoints(), [`${EMPTY.ipv4} 80 reject`, `${EMPTY.ipv6} 80 reject`]);
    for (const ip of [EMPTY.ipv4, EMPTY.ipv6]) assert.deepEqual(await client.http(ip, 80, 5_000), { kind: "refused" }, ip);
    assert.deepEqual(await agents.node.http(EMPTY.ipv6, 80, 5_000), { kind: "refused" }, "from the node itself");
    assert.notEqual((await client.http("fd00:198:18:128::34", 80, 1_500)).kind, "refused", "an IPv6 ClusterIP of no Service: nothing else refuses it");
  });

  await t.test("a pod comes: served on both ClusterIPs, the no-endpoint elements gone", async () => {
    api.upsert("endpointslices", slice("empty", [80]));
    api.upsert("endpointslices", slice("empty", [80], PODS_V6, undefined, "empty-v6"));
    await until(client, EMPTY.ipv6, 80, "response", "IPv6 served");
    await until(client, EMPTY.ipv4, 80, "response", "IPv4 served");
    assert.deepEqual(await bodies(client, EMPTY.ipv6, 80, 8), new Set(["pod1-v6", "pod2-v6"]));
    await local.sidecar.dataplane.whenSynced();
    assert.deepEqual(await noEndpoints(), []);
  });

  await t.test("only the IPv6 pods go: the IPv6 ClusterIP refused, the IPv4 one still served", async () => {
    api.remove("endpointslices", "default", "empty-v6");
    await until(client, EMPTY.ipv6, 80, "refused", "IPv6 refused again");
    assert.deepEqual(await bodies(client, EMPTY.ipv4, 80, 8), new Set(["pod1", "pod2"]));
    assert.deepEqual(await noEndpoints(), [`${EMPTY.ipv6} 80 reject`]);
  });

  await t.test("internalTrafficPolicy Local, endpoints on other nodes only: dropped (a timeout), as kube-proxy", async () => {
    api.upsert("services", service("itp", ITP, [80], (s) => (s.spec!.internalTrafficPolicy = "Local")));
    api.upsert("endpointslices", slice("itp", [80], PODS_V6, onNodes(["node-b", "node-c"])));
    await waitFor(async () => (await noEndpoints()).includes(`${ITP} 80 drop`), 15_000, "the drop element");
    assert.deepEqual(await client.http(ITP, 80, 1_500), { kind: "timeout" });
    api.upsert("endpointslices", slice("itp", [80], PODS_V6, onNodes(["node-a", "node-c"])));
    await until(client, ITP, 80, "response", "served once an endpoint is on this node");
    assert.deepEqual(await bodies(client, ITP, 80, 4), new Set(["pod1-v6"]));
  });

  await t.test("none of it reloaded HAProxy", async () => {
    assert.equal(await local.reloads(), reloads);
  });
});
