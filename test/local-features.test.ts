// Local mode end to end, what kube-proxy's semantics ask beyond plain ClusterIPs: a dual-stack
// Service reached on its IPv4 and its IPv6 ClusterIP, each only to the pods of its own family
// (every pod has both), ClientIP session affinity, and topology
// hints (this node is in zone-a: only the endpoint hinted for zone-a gets its traffic). The
// client namespace is "a pod on this node"; see test/local-node.ts and test/netns-node.ts.

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { V1EndpointSlice } from "@kubernetes/client-node";
import { LABEL_ZONE } from "../src/kube/node.ts";
import { runCli, waitFor } from "./helpers.ts";
import { LOCAL_TOOLS, NODE_NAME, PODS, service, slice, startLocalNode } from "./local-node.ts";
import { bodies, netnsTestOptions } from "./netns.ts";

const DUAL = { ipv4: "198.18.128.40", ipv6: "fd00:198:18:128::28" };
const PODS_V6 = [{ ip: "fd00:198:18:2::2" }, { ip: "fd00:198:18:3::2" }];
const STICKY = "198.18.128.41";
const SPREAD = "198.18.128.42";
const ZONED = "198.18.128.43";

/** pod1 hinted for zone-b, pod2 for zone-a (this node's); `hinted: false` drops pod1's hint. */
function zoneHints(pod1Hinted = true): (s: V1EndpointSlice) => void {
  return (s) => {
    const [pod1, pod2] = s.endpoints!;
    if (pod1Hinted) pod1!.hints = { forZones: [{ name: "zone-b" }] };
    pod2!.hints = { forZones: [{ name: "zone-a" }] };
  };
}

test("local mode: dual-stack ClusterIPs, ClientIP affinity and topology hints, from a pod on the node", netnsTestOptions(LOCAL_TOOLS), async (t: TestContext) => {
  const local = await startLocalNode(t, {}, (api) => {
    api.upsertNode({ metadata: { name: NODE_NAME, labels: { [LABEL_ZONE]: "zone-a" } } });
    api.upsert("services", service("dual", [DUAL.ipv4, DUAL.ipv6], [80]));
    api.upsert("endpointslices", slice("dual", [80]));
    api.upsert("endpointslices", slice("dual", [80], PODS_V6, undefined, "dual-v6"));
    api.upsert("services", service("sticky", STICKY, [80], (s) => {
      s.spec!.sessionAffinity = "ClientIP";
      s.spec!.sessionAffinityConfig = { clientIP: { timeoutSeconds: 600 } };
    }));
    api.upsert("endpointslices", slice("sticky", [80]));
    api.upsert("services", service("spread", SPREAD, [80]));
    api.upsert("endpointslices", slice("spread", [80]));
    api.upsert("services", service("zoned", ZONED, [80], (s) => (s.spec!.trafficDistribution = "PreferClose")));
    api.upsert("endpointslices", slice("zoned", [80], PODS, zoneHints()));
  });
  const { client } = local.agents;
  const reloads = await local.reloads();

  await t.test("a dual-stack Service: its IPv4 ClusterIP reaches only the IPv4 pods, its IPv6 ClusterIP only the IPv6 pods", async () => {
    assert.deepEqual(await bodies(client, DUAL.ipv4, 80, 16), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(client, DUAL.ipv6, 80, 16), new Set(["pod1-v6", "pod2-v6"]));
  });

  await t.test("sessionAffinity ClientIP keeps the client on one pod; without it, requests spread", async () => {
    assert.equal((await bodies(client, STICKY, 80, 12)).size, 1);
    assert.deepEqual(await bodies(client, SPREAD, 80, 12), new Set(["pod1", "pod2"]));
  });

  await t.test("topology hints: only the endpoint hinted for this node's zone; a ready endpoint without hints: all", async () => {
    assert.deepEqual(await bodies(client, ZONED, 80, 12), new Set(["pod2"]));
    local.api.upsert("endpointslices", slice("zoned", [80], PODS, zoneHints(false)));
    await waitFor(async () => (await bodies(client, ZONED, 80, 4)).has("pod1"), 15_000, "pod1 back once its hint is gone");
    local.api.upsert("endpointslices", slice("zoned", [80], PODS, zoneHints()));
    await waitFor(async () => !(await bodies(client, ZONED, 80, 8)).has("pod1"), 15_000, "pod1 out again");
    assert.equal(local.api.nodeGets, 1, "the Node is read once");
  });

  await t.test("metrics name the Service port that holds a pool backend, not the pool backend", async () => {
    await local.sidecar.dataplane.whenSynced();
    const text = local.sidecar.metrics.render();
    for (const name of ["dual:p80", "dual:p80:ipv6", "sticky:p80", "spread:p80", "zoned:p80"]) assert.match(text, new RegExp(`^kube_haproxy_slots\\{backend="default:${name}",state="used"\\} [1-9]`, "m"), name);
    assert.doesNotMatch(text, /^kube_haproxy_slots\{backend="pool:[^"]*",state="used"\} [1-9]/m, "a claimed pool backend under its own name");
  });

  await t.test("status names the Service port that holds a pool backend (claims.json from the sidecar)", async () => {
    const o = local.options;
    const run = await runCli(["status", "--socket", o.socket, "--config", o.config, "--proxy-mode", "local", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as { servicePort: string; used: number }[];
    for (const name of ["dual:p80", "dual:p80:ipv6", "sticky:p80", "spread:p80", "zoned:p80"]) assert.ok(rows.some((row) => row.servicePort === `default:${name}` && row.used > 0), `${name}: ${run.stdout}`);
    assert.ok(rows.every((row) => !row.servicePort.startsWith("pool:") || row.used === 0), "only free pool backends keep their own name");
  });

  await t.test("none of it reloaded HAProxy", async () => {
    assert.equal(await local.reloads(), reloads);
  });
});
