// Mesh mode end to end, in network namespaces (test/netns-node.ts): the real sidecar in mesh mode,
// a real HAProxy from `render`'s pool configuration, the fake API server, pods behind veths, the
// capture in the node's kernel. From a host "outside the node": an externalIP, a NodePort and a
// load balancer IP reach the pods; externalTrafficPolicy Local keeps external traffic on the
// node's own pod and the health check node port answers kube-proxy's JSON; ClusterIP traffic of
// the same Service still reaches every pod; a NodePort Service created later costs no reload.

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { V1Service, V1ServicePort } from "@kubernetes/client-node";
import { readCapture, readCaptureState } from "../src/capture/index.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { silentLogger } from "../src/log.ts";
import { startSidecar, type Sidecar } from "../src/sidecar.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { CLI, tempDir, waitFor } from "./helpers.ts";
import { bodies, createLab, netnsTestOptions, type Agent } from "./netns.ts";
import type { Outcome } from "./netns-agent.ts";
import { listenInside } from "./netns-listen.ts";
import { NODE_OUTSIDE_IP, SERVICE_CIDRS, buildNode, startNodeHaproxy } from "./netns-node.ts";

const NODE_OUTSIDE_IP_V6 = "fd00:198:18:9::1";
/** The client pod's network (netns-node.ts), as --cluster-cidr. */
const CLIENT_NET = "198.18.1.0/24";

const TOOLS = ["ip", "nft", "iptables"];
const PODS = [{ ip: "198.18.2.2" }, { ip: "198.18.3.2" }];
const FIRST_PORT = 15400;
const HEALTH_PORT = 32100;

type Patch = (s: V1Service) => void;

function service(name: string, clusterIP: string, ports: V1ServicePort[], patch: Patch = () => {}): V1Service {
  return makeService("default", name, ports, (s) => {
    s.spec!.clusterIP = clusterIP;
    s.spec!.clusterIPs = [clusterIP];
    delete s.metadata!.labels;
    patch(s);
  });
}

/** pod1 runs on this node (node-a), pod2 on another. */
function slice(name: string, ports: V1ServicePort[], endpoints = PODS, nodes = ["node-a", "node-b"]) {
  return makeSlice("default", name, `${name}-1`, endpoints, ports.map((port) => ({ name: port.name!, port: 8080 })), (s) =>
    s.endpoints!.forEach((endpoint, i) => (endpoint.nodeName = nodes[i])),
  );
}

async function until(agent: Agent, ip: string, port: number, ok: (outcome: Outcome) => boolean, what: string): Promise<void> {
  await waitFor(async () => ok(await agent.http(ip, port, 1_000)), 15_000, what);
}

const answered = (outcome: Outcome): boolean => outcome.kind === "response";

test("mesh mode: externalIPs, NodePorts and load balancer IPs from outside the node; externalTrafficPolicy Local with its health check and the node's short circuit", netnsTestOptions(TOOLS), async (t: TestContext) => {
  const lab = await createLab(t, TOOLS);
  const { node, agents } = await buildNode(lab);
  const { client, outside } = agents;
  const dir = await tempDir(t, "kh-mesh-");
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  const { api } = cluster;
  const http = (nodePort?: number): V1ServicePort[] => [{ name: "http", port: 80, ...(nodePort ? { nodePort } : {}) }];
  api.upsert("services", service("ext", "198.18.128.40", http(), (s) => (s.spec!.externalIPs = ["198.18.200.1"])));
  api.upsert("endpointslices", slice("ext", http()));
  api.upsert("services", service("np", "198.18.128.41", http(30080), (s) => (s.spec!.type = "NodePort")));
  api.upsert("endpointslices", slice("np", http()));
  api.upsert("services", service("lb", "198.18.128.42", http(30081), (s) => {
    s.spec!.type = "LoadBalancer";
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.1" }] } };
  }));
  api.upsert("endpointslices", slice("lb", http()));
  const local = (s: V1Service): void => {
    s.spec!.type = "LoadBalancer";
    s.spec!.externalTrafficPolicy = "Local";
    s.spec!.healthCheckNodePort = HEALTH_PORT;
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.2" }] } };
  };
  api.upsert("services", service("etp", "198.18.128.43", http(30082), local));
  api.upsert("endpointslices", slice("etp", http()));
  /** A load balancer admitting only `ranges` (the client pod's network, then outside's). */
  const firewalled = (ranges: string[]): V1Service => service("fw", "198.18.128.45", http(30083), (s) => {
    s.spec!.type = "LoadBalancer";
    s.spec!.loadBalancerSourceRanges = ranges;
    s.status = { loadBalancer: { ingress: [{ ip: "198.18.201.3" }] } };
  });
  api.upsert("services", firewalled(["198.18.1.0/24"]));
  api.upsert("endpointslices", slice("fw", http()));

  const started = await startNodeHaproxy(t, lab, node, cluster, { dir, mode: "mesh", firstPort: FIRST_PORT });
  const { nft, haproxy } = started;
  // The client's network stands for the cluster's pod CIDR: its connections get eTP Local's short circuit.
  const options = { ...started.options, clusterCidrs: [CLIENT_NET] };
  const listenHealthCheck = listenInside(node, t);
  let sidecar: Sidecar = startSidecar(options, { log: silentLogger, env: {}, nft, listenHealthCheck });
  t.after(() => sidecar.stop());
  await sidecar.started;
  await sidecar.dataplane.whenSynced();
  await sidecar.healthChecks!.settled();
  const reloads = await reloadCount(haproxy.masterSocket);

  await t.test("from outside the node: an externalIP, a NodePort and a load balancer IP reach both pods", async () => {
    assert.deepEqual(await bodies(outside, "198.18.200.1", 80), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30080), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(outside, "198.18.201.1", 80), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30081), new Set(["pod1", "pod2"]), "the load balancer Service's NodePort");
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP_V6, 30080), new Set(["pod1", "pod2"]), "a NodePort on the node's IPv6 address");
  });

  await t.test("from a pod and from the node itself: the externalIP and the NodePort on the node's address; never 127.0.0.1", async () => {
    assert.deepEqual(await bodies(client, "198.18.200.1", 80), new Set(["pod1", "pod2"]));
    assert.deepEqual(await bodies(client, "198.18.1.1", 30080), new Set(["pod1", "pod2"]), "a pod to its node's address");
    assert.deepEqual(await bodies(agents.node, NODE_OUTSIDE_IP, 30080), new Set(["pod1", "pod2"]));
    assert.equal((await agents.node.http("127.0.0.1", 30080)).kind, "refused", "loopback NodePorts are not captured");
  });

  await t.test("externalTrafficPolicy Local: external traffic only to this node's pod, ClusterIP traffic to both; health check 200, localEndpoints 1", async () => {
    assert.deepEqual(await bodies(outside, "198.18.201.2", 80), new Set(["pod1"]));
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30082), new Set(["pod1"]));
    assert.deepEqual(await bodies(client, "198.18.128.43", 80), new Set(["pod1", "pod2"]));
    // kube-proxy's short circuit: the node's own connections to the external destinations reach every endpoint.
    assert.deepEqual(await bodies(agents.node, "198.18.201.2", 80), new Set(["pod1", "pod2"]), "the node itself to the load balancer IP");
    assert.deepEqual(await bodies(agents.node, NODE_OUTSIDE_IP, 30082), new Set(["pod1", "pod2"]), "the node itself to the NodePort");
    assert.deepEqual(await bodies(client, "198.18.201.2", 80), new Set(["pod1", "pod2"]), "a pod within --cluster-cidr to the load balancer IP");
    assert.deepEqual(await bodies(client, "198.18.1.1", 30082), new Set(["pod1", "pod2"]), "a pod within --cluster-cidr to the NodePort");
    const health = await outside.http(NODE_OUTSIDE_IP, HEALTH_PORT);
    assert.equal(health.kind, "response", JSON.stringify(health));
    const { status, body } = health as Extract<Outcome, { kind: "response" }>;
    assert.equal(status, 200);
    assert.deepEqual(JSON.parse(body), { service: { namespace: "default", name: "etp" }, localEndpoints: 1, serviceProxyHealthy: true });
  });

  await t.test("the node-local pod goes: health check 503 with localEndpoints 0, external traffic dropped, ClusterIP still served, the node itself still served", async () => {
    api.upsert("endpointslices", slice("etp", http(), [PODS[1]!], ["node-b"]));
    await until(outside, NODE_OUTSIDE_IP, HEALTH_PORT, (o) => o.kind === "response" && o.status === 503, "health check 503");
    const health = (await outside.http(NODE_OUTSIDE_IP, HEALTH_PORT)) as Extract<Outcome, { kind: "response" }>;
    assert.deepEqual(JSON.parse(health.body), { service: { namespace: "default", name: "etp" }, localEndpoints: 0, serviceProxyHealthy: true });
    // kube-proxy drops it (another node may have endpoints), never sends it to another node's pod.
    await until(outside, "198.18.201.2", 80, (o) => o.kind === "timeout", "eTP Local without local endpoints: dropped");
    assert.deepEqual(await outside.http(NODE_OUTSIDE_IP, 30082, 1_500), { kind: "timeout" });
    assert.deepEqual(await bodies(client, "198.18.128.43", 80), new Set(["pod2"]));
    assert.deepEqual(await bodies(agents.node, "198.18.201.2", 80), new Set(["pod2"]), "no local endpoint: the node itself still gets an answer");
    assert.deepEqual(await bodies(agents.node, NODE_OUTSIDE_IP, 30082), new Set(["pod2"]));
    assert.deepEqual(await bodies(client, "198.18.201.2", 80), new Set(["pod2"]), "and so does a pod within --cluster-cidr");
    api.upsert("endpointslices", slice("etp", http()));
    await until(outside, NODE_OUTSIDE_IP, HEALTH_PORT, (o) => o.kind === "response" && o.status === 200, "health check 200 again");
  });

  await t.test("loadBalancerSourceRanges: a source inside is served, one outside dropped; changed at runtime; the NodePort is not filtered", async () => {
    assert.deepEqual(await bodies(client, "198.18.201.3", 80), new Set(["pod1", "pod2"]), "198.18.1.2 is within 198.18.1.0/24");
    assert.equal((await outside.http("198.18.201.3", 80, 1_000)).kind, "timeout", "198.18.9.2 is not: dropped, as kube-proxy does");
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30083), new Set(["pod1", "pod2"]), "kube-proxy filters load balancer IPs only");
    api.upsert("services", firewalled(["198.18.9.0/24"]));
    await until(outside, "198.18.201.3", 80, answered, "outside admitted after the change");
    assert.deepEqual(await bodies(outside, "198.18.201.3", 80), new Set(["pod1", "pod2"]));
    assert.equal((await client.http("198.18.201.3", 80, 1_000)).kind, "timeout", "the client pod no longer is");
    assert.deepEqual(await bodies(client, "198.18.128.45", 80), new Set(["pod1", "pod2"]), "its ClusterIP is not filtered");
    assert.equal(await reloadCount(haproxy.masterSocket), reloads, "ranges change in the kernel only");
  });

  await t.test("no endpoints at all: the externalIP and the NodePort refused at once (kube-proxy's reject); endpoints come: served", async () => {
    api.upsert("services", service("none", "198.18.128.46", http(30091), (s) => {
      s.spec!.type = "NodePort";
      s.spec!.externalIPs = ["198.18.200.5"];
    }));
    const verdicts = async (): Promise<string[]> => ((await readCaptureState(nft))?.noEndpoints ?? []).map((e) => `${e.ip ?? "*"} ${e.port} ${e.verdict}`).sort();
    await waitFor(async () => (await verdicts()).length === 3, 15_000, "the no-endpoint elements");
    assert.deepEqual(await verdicts(), ["* 30091 reject", "198.18.128.46 80 reject", "198.18.200.5 80 reject"]);
    assert.deepEqual(await outside.http("198.18.200.5", 80, 5_000), { kind: "refused" });
    assert.deepEqual(await outside.http(NODE_OUTSIDE_IP, 30091, 5_000), { kind: "refused" });
    assert.deepEqual(await client.http("198.18.200.5", 80, 5_000), { kind: "refused" }, "from a pod");
    api.upsert("endpointslices", slice("none", http()));
    await until(outside, "198.18.200.5", 80, answered, "served once it has endpoints");
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30091), new Set(["pod1", "pod2"]));
    api.remove("services", "default", "none");
    await waitFor(async () => (await verdicts()).length === 0 && (await readCapture(nft))?.every((e) => e.port !== 30091) === true, 15_000, "nothing left of it");
  });

  await t.test("a sidecar restart keeps every claim, external ones included: same elements, 0 reloads, health check back", async () => {
    const before = await readCapture(nft);
    await sidecar.stop();
    assert.equal((await outside.http(NODE_OUTSIDE_IP, HEALTH_PORT)).kind, "refused", "the health check port closes with the sidecar");
    sidecar = startSidecar(options, { log: silentLogger, env: {}, nft, listenHealthCheck });
    await sidecar.started;
    await sidecar.dataplane.whenSynced();
    await sidecar.healthChecks!.settled();
    assert.deepEqual(await readCapture(nft), before);
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30082), new Set(["pod1"]));
    assert.equal((await outside.http(NODE_OUTSIDE_IP, HEALTH_PORT)).kind, "response");
    assert.equal(await reloadCount(haproxy.masterSocket), reloads);
  });

  await t.test("a NodePort Service created after start is served with 0 reloads; deleted: its NodePort and health check port close", async () => {
    assert.equal((await outside.http(NODE_OUTSIDE_IP, 30090)).kind, "refused");
    api.upsert("services", service("late", "198.18.128.44", http(30090), (s) => (s.spec!.type = "NodePort")));
    api.upsert("endpointslices", slice("late", http()));
    await until(outside, NODE_OUTSIDE_IP, 30090, answered, "late NodePort served");
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30090), new Set(["pod1", "pod2"]));
    api.remove("services", "default", "late");
    await until(outside, NODE_OUTSIDE_IP, 30090, (o) => o.kind === "refused", "late NodePort gone");
    api.remove("services", "default", "etp");
    await until(outside, NODE_OUTSIDE_IP, HEALTH_PORT, (o) => o.kind === "refused", "health check port closed");
    assert.equal(await reloadCount(haproxy.masterSocket), reloads, "no reload for Services created or deleted");
  });

  await t.test("capture twice leaves one set of rules and keeps the elements; cleanup leaves nothing", async () => {
    await sidecar.stop();
    const list = () => node.exec(["nft", "list", "ruleset"]);
    const flags = ["--proxy-mode", "mesh", "--service-cidr", SERVICE_CIDRS.join(","), "--capture-port", String(FIRST_PORT), "--cluster-cidr", CLIENT_NET];
    const elements = await readCapture(nft);
    assert.ok(elements?.some((entry) => entry.ip === undefined && entry.port === 30080), "a NodePort element is in the kernel");
    await node.exec([process.execPath, CLI, "capture", ...flags]);
    const once = await list();
    await node.exec([process.execPath, CLI, "capture", ...flags]);
    assert.equal(await list(), once);
    assert.match(once, /map nodeports/);
    assert.match(once, /ip saddr 198\.18\.1\.0\/24 meta l4proto tcp redirect to :ip daddr \. tcp dport map @node-captured-ipv4/);
    assert.deepEqual(await readCapture(nft), elements);
    assert.deepEqual(await bodies(outside, NODE_OUTSIDE_IP, 30080, 2), new Set(["pod1", "pod2"]));
    await node.exec([process.execPath, CLI, "cleanup"]);
    assert.doesNotMatch(await list(), /kube-haproxy/);
    assert.equal(await readCapture(nft), undefined);
  });
});
