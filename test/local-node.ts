// One node running local mode, for the end-to-end tests (and the bench): the namespaces of
// test/netns-node.ts, the fake API server, `render`'s pool configuration, a real HAProxy inside
// the node namespace and the real sidecar (startSidecar) running nft there. Everything it starts
// is stopped by teardowns registered on `t` before the next thing starts.

import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { readCapture, type NftOptions } from "../src/capture/index.ts";
import { entryId } from "../src/dataplane/pool.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { silentLogger } from "../src/log.ts";
import type { Options, RawFlags } from "../src/options.ts";
import { startSidecar, type Sidecar } from "../src/sidecar.ts";
import type { FakeApiServer } from "../src/sim/api-server.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import type { HaproxyProcess } from "../src/sim/haproxy.ts";
import { makeService, makeSlice, type PodEndpoint } from "../src/sim/objects.ts";
import { tempDir, waitFor } from "./helpers.ts";
import { createLab, type Agent } from "./netns.ts";
import type { Outcome } from "./netns-agent.ts";
import { NODE_NAME, buildNode, startNodeHaproxy, type NodeTopology } from "./netns-node.ts";

export { NODE_NAME };

export const LOCAL_TOOLS = ["ip", "nft", "iptables"];
export const PODS: readonly PodEndpoint[] = [{ ip: "198.18.2.2" }, { ip: "198.18.3.2" }];

/** A Service of `default` with these ClusterIPs (dual-stack when two) and TCP ports `p<port>`; unlabelled: local mode serves every Service. */
export function service(name: string, clusterIPs: string | readonly string[], ports: readonly number[], patch: (s: V1Service) => void = () => {}): V1Service {
  const ips = typeof clusterIPs === "string" ? [clusterIPs] : [...clusterIPs];
  return makeService("default", name, ports.map((port) => ({ name: `p${port}`, port })), (s) => {
    s.spec!.clusterIP = ips[0]!;
    s.spec!.clusterIPs = ips;
    s.spec!.ipFamilies = ips.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4"));
    delete s.metadata!.labels;
    patch(s);
  });
}

/** Its EndpointSlice: each port `p<port>` targets 8080 on the pods (the agents' HTTP servers). */
export function slice(name: string, ports: readonly number[], endpoints: readonly PodEndpoint[] = PODS, patch?: (s: V1EndpointSlice) => void, sliceName = `${name}-1`): V1EndpointSlice {
  return makeSlice("default", name, sliceName, endpoints, ports.map((port) => ({ name: `p${port}`, port: 8080 })), patch);
}

/** A slice patch: endpoint i runs on nodes[i]. */
export function onNodes(nodes: readonly string[]): (s: V1EndpointSlice) => void {
  return (s) => s.endpoints!.forEach((endpoint, i) => (endpoint.nodeName = nodes[i]));
}

export interface LocalNode extends NodeTopology {
  readonly api: FakeApiServer;
  readonly options: Options;
  readonly haproxy: HaproxyProcess;
  readonly nft: NftOptions;
  /** The running sidecar (a new one after restartSidecar). */
  readonly sidecar: Sidecar;
  restartSidecar(): Promise<void>;
  reloads(): Promise<number>;
}

/**
 * Starts the node: `seed` fills the API server first (what `render` sees), then render, HAProxy,
 * the sidecar, and waits for its first sync. `flags` are added to the local-mode flags.
 */
export async function startLocalNode(t: { after(fn: () => void | Promise<void>): void }, flags: RawFlags = {}, seed: (api: FakeApiServer) => void = () => {}, firstPort = 15200): Promise<LocalNode> {
  const lab = await createLab(t, LOCAL_TOOLS);
  const topology = await buildNode(lab);
  const dir = await tempDir(t, "kh-local-");
  const cluster = await startSimulatedCluster(dir);
  t.after(() => cluster.stop());
  seed(cluster.api);
  const { options, nft, haproxy } = await startNodeHaproxy(t, lab, topology.node, cluster, { dir, mode: "local", firstPort, flags });
  let sidecar = startSidecar(options, { log: silentLogger, env: {}, nft });
  t.after(() => sidecar.stop());
  await sidecar.started;
  await sidecar.dataplane.whenSynced();
  return {
    ...topology,
    api: cluster.api,
    options,
    haproxy,
    nft,
    get sidecar() {
      return sidecar;
    },
    async restartSidecar() {
      await sidecar.stop();
      sidecar = startSidecar(options, { log: silentLogger, env: {}, nft });
      await sidecar.started;
      await sidecar.dataplane.whenSynced();
    },
    reloads: () => reloadCount(haproxy.masterSocket),
  };
}

/** Waits until `ip:port` from `agent` comes to `kind` (a new Service port reaching HAProxy, a deleted one refused). */
export async function until(agent: Agent, ip: string, port: number, kind: Outcome["kind"], what: string): Promise<void> {
  await waitFor(async () => (await agent.http(ip, port, 1_000)).kind === kind, 15_000, what);
}

/** The i-th churned Service's ClusterIP (i < 2,000), inside the Service CIDR 198.18.128.0/20, above the tests' fixed ones. */
export function churnIP(i: number): string {
  return `198.18.${136 + Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/**
 * Creates Services `churn<i>` (port 80, both pods) for `indexes` at once, waits until the kernel
 * sends every one of them to HAProxy, runs `check`, deletes them and waits until none is captured.
 */
export async function churnServices(local: LocalNode, indexes: readonly number[], check: (local: LocalNode, indexes: readonly number[]) => Promise<void> = async () => {}): Promise<void> {
  const ids = new Set(indexes.map((i) => entryId({ ip: churnIP(i), port: 80 })));
  const captured = async (): Promise<number> => ((await readCapture(local.nft)) ?? []).filter((entry) => ids.has(entryId(entry))).length;
  const what = `Services churn${indexes[0]}…churn${indexes.at(-1)}`;
  for (const i of indexes) {
    local.api.upsert("services", service(`churn${i}`, churnIP(i), [80]));
    local.api.upsert("endpointslices", slice(`churn${i}`, [80]));
  }
  await waitFor(async () => (await captured()) === ids.size, 30_000, `${what} captured`);
  await check(local, indexes);
  for (const i of indexes) {
    local.api.remove("endpointslices", "default", `churn${i}-1`);
    local.api.remove("services", "default", `churn${i}`);
  }
  await waitFor(async () => (await captured()) === 0, 30_000, `${what} released`);
}
