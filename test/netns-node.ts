// One Kubernetes node in network namespaces, for the local/mesh tests:
//
//            client ("a pod on this node")        bare (a pod on an unnumbered veth, Calico-style)
//                 198.18.1.2 │ fd00:198:18:1::2        198.18.5.2 │ (no address on the node side)
//                            │                                    │
//   outside ─── 198.18.9.x ─ node (HAProxy, the capture, kube-proxy's stand-in) ─┬─ pod1 198.18.2.2 │ fd00:198:18:2::2
//   (the node's default route)                                                   ├─ pod2 198.18.3.2 │ fd00:198:18:3::2
//                                                                                └─ standin 198.18.4.2 (what kube-proxy sends to)
//
// Service CIDRs 198.18.128.0/20 and fd00:198:18:128::/112. The stand-in for kube-proxy is plain
// iptables, as its default mode writes it: DNAT for a UDP "DNS" ClusterIP, for a TCP ClusterIP
// we do not serve, and for the ClusterIP we do serve (so that a test sees whose rule won), then
// a REJECT for the rest of the Service CIDR.

import { renderFromCluster } from "../src/bootstrap.ts";
import type { NftOptions } from "../src/capture/index.ts";
import { silentLogger } from "../src/log.ts";
import type { Options, RawFlags } from "../src/options.ts";
import { haproxyBinary, startHaproxy, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { fastOptions } from "../src/sim/world.ts";
import type { Agent, Lab, Namespace } from "./netns.ts";

/** The node these tests run as (`--hostname-override`, EndpointSlice nodeName). */
export const NODE_NAME = "node-a";

export const SERVICE_CIDRS = ["198.18.128.0/20", "fd00:198:18:128::/112"] as const;

/** Mesh: externalIPs and load balancer IPs, outside the Service CIDR; "outside" routes them to the node. */
export const EXTERNAL_RANGE = "198.18.200.0/22";
/** The node's address as "outside" reaches it (NodePorts, health check node ports). */
export const NODE_OUTSIDE_IP = "198.18.9.1";

/** ClusterIPs of the stand-in's rules. */
export const STANDIN = {
  dns: { ip: "198.18.128.53", port: 53 }, // UDP, to 198.18.4.2:5353
  other: { ip: "198.18.128.20", port: 9000 }, // TCP we do not capture, to 198.18.4.2:9000 ("standin")
  web: { ip: "198.18.128.10", port: 80 }, // TCP we capture; kube-proxy's rule sends it to "standin" too
} as const;

export interface NodeTopology {
  readonly node: Namespace;
  /** outside: a host beyond the node's network (mesh's external traffic), routing EXTERNAL_RANGE to the node. */
  readonly agents: { readonly client: Agent; readonly node: Agent; readonly bare: Agent; readonly outside: Agent };
  /** What `iptables-save` printed once the stand-in was in place. */
  readonly standinRules: string;
  iptablesSave(): Promise<string>;
}

const v6 = (net: number, host: number): string => `fd00:198:18:${net}::${host}`;

export async function buildNode(lab: Lab): Promise<NodeTopology> {
  const node = await lab.namespace("node");
  const spokes: { role: string; net: number; ipv6: boolean }[] = [
    { role: "client", net: 1, ipv6: true },
    { role: "pod1", net: 2, ipv6: true },
    { role: "pod2", net: 3, ipv6: true },
    { role: "standin", net: 4, ipv6: false },
    { role: "outside", net: 9, ipv6: true },
  ];
  const spokeNs = new Map<string, Namespace>();
  for (const { role, net, ipv6 } of spokes) {
    const ns = await lab.namespace(role);
    spokeNs.set(role, ns);
    const far = [`198.18.${net}.2/24`, ...(ipv6 ? [`${v6(net, 2)}/64`] : [])];
    const near = [`198.18.${net}.1/24`, ...(ipv6 ? [`${v6(net, 1)}/64`] : [])];
    await lab.link({ ns, ifname: "eth0", addresses: far }, { ns: node, ifname: `v-${role}`, addresses: near });
    if (role === "outside") {
      // The far end of the node's default route: it forwards nothing, and reaches external IPs through the node.
      await ns.exec(["ip", "route", "add", EXTERNAL_RANGE, "via", NODE_OUTSIDE_IP]);
      continue;
    }
    await ns.exec(["ip", "route", "add", "default", "via", `198.18.${net}.1`]);
    if (ipv6) await ns.exec(["ip", "-6", "route", "add", "default", "via", v6(net, 1)]);
  }
  await node.exec(["ip", "route", "add", "default", "via", "198.18.9.2"]);
  await node.exec(["ip", "-6", "route", "add", "default", "via", v6(9, 2)]);
  await node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);

  // A pod whose veth has no address on the node's side: reached by a host route, answered by proxy ARP.
  const bare = await lab.namespace("bare");
  await lab.link({ ns: bare, ifname: "eth0", addresses: ["198.18.5.2/32"] }, { ns: node, ifname: "v-bare", addresses: [] });
  await bare.exec(["ip", "route", "add", "default", "dev", "eth0"]);
  await node.exec(["ip", "route", "add", "198.18.5.2/32", "dev", "v-bare"]);
  await node.exec(["sysctl", "-qw", "net.ipv4.conf.v-bare.proxy_arp=1"]);

  for (const [role, net] of [["pod1", 2], ["pod2", 3]] as const) {
    const agent = await spokeNs.get(role)!.agent();
    await agent.serveHttp(`198.18.${net}.2`, 8080, role);
    await agent.serveHttp(v6(net, 2), 8080, `${role}-v6`);
  }
  const standin = await spokeNs.get("standin")!.agent();
  await standin.serveUdp("198.18.4.2", 5353, "dns");
  await standin.serveHttp("198.18.4.2", 9000, "standin");

  const dnat = (proto: string, ip: string, port: number, to: string): string[][] =>
    ["PREROUTING", "OUTPUT"].map((chain) => ["-t", "nat", "-A", chain, "-d", ip, "-p", proto, "--dport", String(port), "-j", "DNAT", "--to-destination", to]);
  const rules = [
    ...dnat("udp", STANDIN.dns.ip, STANDIN.dns.port, "198.18.4.2:5353"),
    ...dnat("tcp", STANDIN.other.ip, STANDIN.other.port, "198.18.4.2:9000"),
    ...dnat("tcp", STANDIN.web.ip, STANDIN.web.port, "198.18.4.2:9000"),
    ...["FORWARD", "OUTPUT"].map((chain) => ["-A", chain, "-d", SERVICE_CIDRS[0], "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]),
  ];
  for (const rule of rules) await node.exec(["iptables", "-w", ...rule]);
  const iptablesSave = async (): Promise<string> => (await node.exec(["iptables-save"])).replace(/^[#:].*\n/gm, "");

  return {
    node,
    agents: { client: await spokeNs.get("client")!.agent(), node: await node.agent(), bare: await bare.agent(), outside: await spokeNs.get("outside")!.agent() },
    standinRules: await iptablesSave(),
    iptablesSave,
  };
}

/**
 * Local or mesh mode's options for this node (node-a, SERVICE_CIDRS, pool from `firstPort`, then
 * `flags`), the bootstrap configuration rendered from the cluster, and HAProxy running in the
 * node's namespace (the binary under test); HAProxy is killed by `t`'s teardown.
 */
export async function startNodeHaproxy(
  t: { after(fn: () => void | Promise<void>): void },
  lab: Lab,
  node: Namespace,
  cluster: { readonly kubeconfig: string },
  setup: { readonly dir: string; readonly mode: "local" | "mesh"; readonly firstPort: number; readonly flags?: RawFlags },
): Promise<{ options: Options; nft: NftOptions; haproxy: HaproxyProcess }> {
  const options = fastOptions(setup.dir, cluster.kubeconfig, 4, {
    "proxy-mode": setup.mode,
    "service-cidr": SERVICE_CIDRS.join(","),
    "capture-port": String(setup.firstPort),
    "hostname-override": NODE_NAME,
    ...setup.flags,
  });
  await renderFromCluster(options, silentLogger, {});
  const haproxy = await startHaproxy({ dir: setup.dir, configPath: options.config, binary: await lab.wrapper(node, haproxyBinary(), setup.dir) });
  t.after(() => haproxy.kill());
  return { options, nft: { command: node.wrap(["nft"]) }, haproxy };
}
