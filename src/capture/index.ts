// Kernel capture for the local and mesh modes: how ClusterIP TCP reaches HAProxy, and how
// everything else does not.
//
//   pod / node ──TCP──► ClusterIP:port ─┬─ in map captured-ipv4|6 ──► NAT (-110) ──► HAProxy :listener
//                                       └─ not in it, UDP, SCTP ─────► kube-proxy's rules (-100), untouched
//
// - One nftables table, `inet kube-haproxy`, ours alone: `cleanup` is `delete table`, and no
//   other rule in the kernel is read or written.
// - A map per family, `address . port : listener port`, one element per Service port HAProxy
//   serves, changed at runtime as Services come and go (kube-proxy's nftables mode works this
//   way). NAT chains in prerouting (pods, other hosts) and output (the node's own processes and
//   hostNetwork pods) send a match to its listener: REDIRECT, or DNAT to the `--interface`
//   address (REDIRECT drops a connection that comes in on an interface without an address of
//   its family, e.g. Calico's unnumbered veths). Priority -110 comes before kube-proxy's NAT
//   (-100, iptables and nftables modes): the first chain that NATs a connection wins, so a
//   captured connection never meets kube-proxy's rules and the rest meets only them.
// - Mesh mode adds two things. The address maps also take addresses outside the Service CIDRs
//   (externalIPs, load balancer IPs; never loopback, link-local or multicast): the rules match
//   by the map, so prerouting catches them from other hosts and output from the node. And a
//   port-only map, `nodeports`, `port : listener port`, matched after the address maps for TCP
//   to a local address of the node (`fib daddr type local`, kube-proxy's NodePort rule), within
//   --nodeport-addresses, never on loopback (kube-proxy's nftables mode does not serve
//   NodePorts there either; its iptables mode needs route_localnet, which we leave alone).
//   Each map has a twin, `node-…`, read first in output (and in prerouting for sources within
//   the pod CIDRs, --cluster-cidr): the node's own (and its pods') connections to an
//   externalTrafficPolicy Local Service's external destinations go to its cluster-wide backend
//   (kube-proxy's short circuit). And loadBalancerSourceRanges: sets `restricted-*` (address .
//   port) and `allowed-*` (address . port . source CIDR, intervals), and filter chains before
//   the NAT that drop a restricted key's packets from other sources, as kube-proxy does.
// - Why the map's value is a listener port, not one listener that routes on the original
//   destination: HAProxy asks the kernel for the original destination only for IPv4
//   (SO_ORIGINAL_DST); after an IPv6 REDIRECT its `dst` is the node's own address (measured with
//   HAProxy 2.6.12 and 3.4.0). With a listener port per pool backend the kernel carries the
//   routing, the same way for both families and every HAProxy version; `dst` still names the
//   ClusterIP for IPv4 logs. Mapping every entry to one port gives the single-listener form
//   (`use_backend %[dst,concat(:,<var>),map(…)]`), which works for IPv4 only.
// - Listeners bind the wildcard address (REDIRECT targets the incoming interface's address, or
//   127.0.0.1/::1 from output), so an input guard refuses connections that reach a listener port
//   without having been NATed: ClusterIP Services stay unreachable from outside the cluster.
// - A Service port without endpoints is not captured; a map of its addresses and ports makes the
//   kernel reject new connections to them (or drop them, when only other nodes have endpoints),
//   as kube-proxy does: see no-endpoints.ts.
// - Hitless changes: a Service port's servers are made ready in HAProxy before its element goes
//   in; its element goes out before its servers go to maint. Conntrack keeps every established
//   connection on the path it started on; replacing the table (`capture`) keeps the elements.
// - Privilege: whatever runs nft (the sidecar, which changes the maps, and `capture`/`cleanup`)
//   needs CAP_NET_ADMIN in the node's network namespace (hostNetwork) and nothing more; HAProxy
//   needs none of it. A non-root container gets no ambient capabilities in Kubernetes and
//   `allowPrivilegeEscalation: false` ignores file capabilities, so that container runs as uid 0
//   with every capability dropped but NET_ADMIN.
// - nftables only: inet-family NAT needs Linux ≥ 5.3, older than any kernel Kubernetes still
//   supports; iptables on current distributions is iptables-nft (the same engine), and rules of
//   legacy iptables are ordered with ours by priority. The image needs `nft` (Debian: nftables).

export { diffEntries, isEmpty, type CaptureChanges } from "./changes.ts";
export { cleanupCapture, installCapture, readCapture, readCaptureState, syncCapture, updateCapture, type CaptureState, type NftOptions } from "./nft.ts";
export { NO_ENDPOINT_PRIORITY, type NoEndpointEntry, type NoEndpointVerdict } from "./no-endpoints.ts";
export { NAT_PRIORITY, TABLE, renderChanges, renderCleanup, renderRuleset } from "./ruleset.ts";
export { checkConfig, type CaptureConfig, type CaptureEntry, type Family } from "./spec.ts";
