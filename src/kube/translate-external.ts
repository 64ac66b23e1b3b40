// Mesh mode's part of the translation: a Service's external destinations (externalIPs, load
// balancer ingress IPs, NodePorts) and externalTrafficPolicy, with kube-proxy's semantics
// (pkg/proxy/service.go, healthcheck/). Pure, like translate.ts, which calls it.
//
//   Service port ─┬─ externalTrafficPolicy Cluster: one backend, every endpoint; its binds are
//                 │  the ClusterIPs and the external IPs, plus its NodePort
//                 └─ externalTrafficPolicy Local: the ClusterIP backend as in local mode, and a
//                    second one, `<backend>:external`, holding only this node's endpoints, for
//                    the external IPs and the NodePort
//
// Two backends, because the capture sends each destination to one listener (one pool backend):
// ClusterIP traffic of an eTP Local Service still goes to every endpoint, external traffic only
// to this node's. No local endpoint: the external backend has no servers and the kernel drops
// the connection, as kube-proxy (families.ts, capture/no-endpoints.ts), never another node's pod. Connections the node itself opens
// to the external destinations take the ClusterIP backend (`nodeShortcut`): kube-proxy's short
// circuit, so that they work with no local endpoint; pods within --cluster-cidr too (the
// capture tells them apart by source, kube-proxy's --detect-local-mode ClusterCIDR).

import { BlockList, SocketAddress, isIP } from "node:net";
import { backendName, endpointKey, isEndpointAddress, isPort, type Backend, type Bind, type Endpoint } from "../model.ts";
import type { V1EndpointSlice, V1Service } from "./objects.ts";

/** One Service port as the spec declares it (name, port, nodePort). */
type ServicePort = NonNullable<NonNullable<V1Service["spec"]>["ports"]>[number];

export interface ExternalInput {
  readonly service: V1Service;
  /** namespace/name */
  readonly key: string;
  /** The Service's backends as local mode translates them (binds: its ClusterIPs). */
  readonly backends: readonly Backend[];
  /** This node's endpoints of a Service port (for externalTrafficPolicy Local). */
  readonly localEndpoints: (port: ServicePort) => Endpoint[];
  /** Why an external address is not used, for the skip records. */
  readonly invalid: (message: string) => void;
}

/** kube-proxy's healthCheckNodePort answer for one Service on this node. */
export interface HealthCheckNodePort {
  readonly port: number;
  /** Ready endpoints on this node, counted by IP over all ports (kube-proxy's LocalReadyEndpoints). */
  readonly localEndpoints: number;
}

function isLoadBalancer(service: V1Service): boolean {
  return service.spec?.type === "LoadBalancer";
}

function hasNodePorts(service: V1Service): boolean {
  return service.spec?.type === "NodePort" || isLoadBalancer(service);
}

/**
 * The addresses external traffic reaches the Service at, each once, sorted: externalIPs and the
 * load balancer's ingress IPs, valid ones. An ingress with `ipMode: Proxy` is left out, as
 * kube-proxy does: its load balancer proxies to the NodePorts and does not send packets
 * addressed to that IP. A load balancer IP carries the Service's loadBalancerSourceRanges of
 * its family (kube-proxy filters those only: not externalIPs, ClusterIPs or NodePorts), also
 * when the same address is an externalIP too.
 */
function externalAddresses(service: V1Service, invalid: (message: string) => void): { readonly address: string; readonly sourceRanges?: readonly string[] }[] {
  const out = new Map<string, readonly string[] | undefined>();
  const add = (ip: unknown, what: string, ranges?: readonly string[]): void => {
    if (!isEndpointAddress(ip)) invalid(`${what} ${JSON.stringify(ip ?? null)} is not an IP address; it is ignored.`);
    else out.set(ip, ranges ?? out.get(ip));
  };
  for (const ip of service.spec?.externalIPs ?? []) add(ip, "externalIP");
  if (isLoadBalancer(service)) {
    const ranges = sourceRanges(service.spec?.loadBalancerSourceRanges ?? [], invalid);
    for (const ingress of service.status?.loadBalancer?.ingress ?? []) {
      if (ingress.ip === undefined || ingress.ipMode === "Proxy") continue; // hostname-only ingress: nothing to capture
      add(ingress.ip, "load balancer ingress IP", ranges[isIP(ingress.ip) === 6 ? "ipv6" : "ipv4"]);
    }
  }
  return [...out].sort(([a], [b]) => compareText(a, b)).map(([address, ranges]) => (ranges === undefined ? { address } : { address, sourceRanges: ranges }));
}

type Family = "ipv4" | "ipv6";

/**
 * loadBalancerSourceRanges per family, kube-proxy's way (pkg/proxy/service.go): entries trimmed;
 * a family's load balancer IPs admit only that family's ranges; none of that family, or a
 * zero-length prefix, admits any source (undefined). Each range canonical (its network address,
 * as nft prints it back), sorted, one inside another left out (nft refuses overlapping
 * intervals). An entry that is no CIDR (the API server refuses them; an object that skipped
 * validation) is left out with a record and the others still apply; when no entry is readable
 * at all, no source is admitted: a Service is never opened wider than it asked.
 */
function sourceRanges(entries: readonly unknown[], invalid: (message: string) => void): Record<Family, readonly string[] | undefined> {
  const parsed = entries.flatMap((entry) => {
    const range = typeof entry === "string" ? parseRange(entry.trim()) : undefined;
    if (!range) invalid(`loadBalancerSourceRanges entry ${JSON.stringify(entry ?? null)} is not a CIDR; it is left out, the other ranges still apply.`);
    return range ?? [];
  });
  if (entries.length > 0 && parsed.length === 0) return { ipv4: [], ipv6: [] };
  const of = (family: Family): string[] | undefined => {
    const ranges = parsed.filter((range) => range.family === family).sort((a, b) => a.prefix - b.prefix);
    if (ranges.length === 0 || ranges[0]!.prefix === 0) return undefined;
    const kept = new BlockList();
    const out: string[] = [];
    for (const { network, prefix } of ranges) {
      if (kept.check(network, family)) continue; // inside a wider range already kept
      kept.addSubnet(network, prefix, family);
      out.push(`${network}/${prefix}`);
    }
    return out.sort(compareText);
  };
  return { ipv4: of("ipv4"), ipv6: of("ipv6") };
}

/** A CIDR with its host bits cleared; undefined when the text is not one. */
function parseRange(text: string): { family: Family; network: string; prefix: number } | undefined {
  const match = /^([^/%]+)\/(\d{1,3})$/.exec(text);
  const version = match ? isIP(match[1]!) : 0;
  const bits = version === 4 ? 32 : 128;
  const prefix = Number(match?.[2]);
  if (version === 0 || prefix > bits) return undefined;
  const family: Family = version === 4 ? "ipv4" : "ipv6";
  const value = addressValue(match![1]!, family);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { family, network: addressText(value & mask, family), prefix };
}

function addressValue(address: string, family: Family): bigint {
  if (family === "ipv4") return address.split(".").reduce((value, octet) => (value << 8n) | BigInt(octet), 0n);
  const [head = "", tail] = new SocketAddress({ address, family }).address.split("::");
  const groups = (part: string | undefined): string[] => (part ? part.split(":") : []);
  const all = tail === undefined ? groups(head) : [...groups(head), ...Array(8 - groups(head).length - groups(tail).length).fill("0"), ...groups(tail)];
  return all.reduce((value, group) => (value << 16n) | BigInt(`0x${group}`), 0n);
}

function addressText(value: bigint, family: Family): string {
  const width = family === "ipv4" ? 4 : 8;
  const size = family === "ipv4" ? 8n : 16n;
  const parts = Array.from({ length: width }, (_, i) => (value >> (size * BigInt(width - 1 - i))) & ((1n << size) - 1n));
  const text = family === "ipv4" ? parts.join(".") : parts.map((part) => part.toString(16)).join(":");
  return new SocketAddress({ address: text, family }).address;
}

/** The Service port's NodePort, when its type has them and one is allocated. */
function nodePortOf(service: V1Service, port: ServicePort): number | undefined {
  return hasNodePorts(service) && isPort(port.nodePort) ? port.nodePort : undefined;
}

function externalPolicyLocal(service: V1Service): boolean {
  return service.spec?.externalTrafficPolicy === "Local";
}

/** The backends of a Service in mesh mode: local mode's, with the external destinations added (see the top of this file). */
export function withExternal(input: ExternalInput): Backend[] {
  const { service, key, backends } = input;
  const addresses = externalAddresses(service, input.invalid);
  const local = externalPolicyLocal(service);
  const [namespace = "", name = ""] = key.split("/");
  const out: Backend[] = [];
  for (const backend of backends) {
    const portId = backend.servicePort.slice(key.length + 1);
    const port = (service.spec?.ports ?? []).find((p) => (p.name || String(p.port)) === portId);
    const nodePort = port && nodePortOf(service, port);
    if (!port || (addresses.length === 0 && nodePort === undefined)) {
      out.push(backend);
      continue;
    }
    const binds = addresses.map((address) => ({ ...address, port: port.port }));
    const withNodePort = nodePort === undefined ? {} : { nodePort };
    if (!local) {
      out.push({ ...backend, ...withNodePort, binds: [...backend.binds, ...binds] });
      continue;
    }
    out.push(backend, {
      ...backend,
      ...withNodePort,
      nodeShortcut: backend.name,
      name: backendName(namespace, name, `${portId}:external`),
      servicePort: `${backend.servicePort} (external)`,
      binds,
      endpoints: input.localEndpoints(port),
    });
  }
  return out;
}

/**
 * What the Service's healthCheckNodePort answers on this node: only a LoadBalancer Service with
 * externalTrafficPolicy Local has one. Counted as kube-proxy does: ready endpoints (not serving
 * terminating ones: the load balancer should move away from a node whose pods are going) whose
 * nodeName is this node, by distinct IP over all the Service's ports.
 */
export function healthCheckNodePort(service: V1Service, slices: readonly V1EndpointSlice[], nodeName: string): HealthCheckNodePort | undefined {
  const port = service.spec?.healthCheckNodePort;
  if (!isLoadBalancer(service) || !externalPolicyLocal(service) || !isPort(port)) return undefined;
  const ips = new Set<string>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      const ip = endpoint.addresses?.[0];
      if (endpoint.nodeName === nodeName && (endpoint.conditions?.ready ?? true) && isEndpointAddress(ip)) ips.add(ip);
    }
  }
  return { port, localEndpoints: ips.size };
}

/** What the destination resolver needs of a Service's translation (translate.ts's ServiceTranslation). */
interface Claimant {
  /** namespace/name */
  readonly key: string;
  readonly createdAt: number;
  readonly backends: readonly Backend[];
}

export interface DestinationConflict {
  readonly service: string;
  readonly port: string;
  readonly reason: "port-conflict";
  readonly message: string;
}

/**
 * Local and mesh modes: each destination (address and port, or a NodePort) is captured for one
 * Service port only, the kernel's map holding one listener per key. Two Services naming the same
 * externalIP or load balancer IP and port, or the same NodePort (the API server prevents that, a
 * bad object must not break the map): the older Service keeps it (creationTimestamp, then
 * namespace/name, as resolvePortConflicts in onlyfetch), the younger loses that destination
 * only, with a conflict record, and keeps its others; a backend left with no destination at all
 * is dropped. ClusterIPs compete the same way, though the API server never hands one out twice.
 * Deterministic: Services by age, then key; backends by name.
 */
export function resolveDestinationConflicts<T extends Claimant>(translations: readonly T[]): { readonly translations: T[]; readonly skipped: DestinationConflict[] } {
  const ordered = [...translations].sort(oldestFirst);
  const owners = new Map<string, string>(); // destination → the servicePort that holds it
  const skipped: DestinationConflict[] = [];
  const out: T[] = [];
  for (const translation of ordered) {
    const backends: Backend[] = [];
    for (const backend of [...translation.backends].sort((a, b) => compareText(a.name, b.name))) {
      const port = backend.servicePort.slice(translation.key.length + 1);
      const lose = (destination: string): boolean => {
        const winner = owners.get(destination);
        if (winner === undefined || winner === backend.servicePort) return false;
        const message = `Service port ${backend.servicePort} cannot capture ${destination}: the older ${winner} holds it.`;
        skipped.push({ service: translation.key, port, reason: "port-conflict", message });
        return true;
      };
      const binds = backend.binds.filter((bind) => !lose(destinationOf(bind)));
      const nodePort = backend.nodePort !== undefined && !lose(`NodePort ${backend.nodePort}`) ? backend.nodePort : undefined;
      if (binds.length === 0 && nodePort === undefined) continue;
      for (const bind of binds) owners.set(destinationOf(bind), backend.servicePort);
      if (nodePort !== undefined) owners.set(`NodePort ${nodePort}`, backend.servicePort);
      const { nodePort: _, ...rest } = backend;
      backends.push({ ...rest, binds, ...(nodePort === undefined ? {} : { nodePort }) });
    }
    out.push({ ...translation, backends });
  }
  skipped.sort((a, b) => compareText(a.service, b.service) || compareText(a.port, b.port));
  return { translations: out, skipped };
}

/** An address and port, the address canonical ("fd00::a" and "fd00:0::A" are one destination, as in the kernel's map). */
function destinationOf(bind: Bind): string {
  const family = isIP(bind.address) === 6 ? "ipv6" : "ipv4";
  return endpointKey({ ip: new SocketAddress({ address: bind.address, family }).address, port: bind.port });
}

/** Who keeps a contested port or destination: the older Service, then the first by namespace/name (kube-proxy's rule). */
export function oldestFirst(a: { readonly createdAt: number; readonly key: string }, b: { readonly createdAt: number; readonly key: string }): number {
  return a.createdAt - b.createdAt || compareText(a.key, b.key);
}

/** Code-unit order, not locale order: the same on every machine. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
