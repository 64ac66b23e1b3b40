// Options → local mode's parts: the capture configuration (src/capture), the data plane's pool
// settings with the kernel as its CaptureDriver, the pool a fresh configuration renders, who
// holds which pool backend (for metrics and status), and this node's zone (topology hints).

import { BlockList } from "node:net";
import { networkInterfaces } from "node:os";
import { checkConfig, installCapture, readCaptureState, updateCapture, type CaptureConfig, type NftOptions } from "./capture/index.ts";
import { checkKey, parseCidr } from "./capture/spec.ts";
import type { CaptureDriver, LocalOptions } from "./dataplane/local.ts";
import { layoutBackend } from "./dataplane/planner.ts";
import { freshPool } from "./dataplane/pool.ts";
import { writeConfigAtomically } from "./haproxy/config-file.ts";
import type { RenderedBackend } from "./haproxy/render.ts";
import { loadKubeConfig } from "./kube/kubeconfig.ts";
import { readNodeZone } from "./kube/node.ts";
import type { Logger } from "./log.ts";
import type { Backend } from "./model.ts";
import { badOption, type Options } from "./options.ts";
import { claimsPath } from "./status.ts";

/** The capture for these listener ports; with --interface, its addresses are the DNAT targets. */
export function captureConfig(options: Options, listenPorts: { readonly first: number; readonly last: number }): CaptureConfig {
  return {
    listenPorts,
    serviceCidrs: options.serviceCidrs,
    ...(options.interface ? { listenAddresses: interfaceAddresses(options.interface) } : {}),
    ...(options.proxyMode === "mesh" ? { mesh: { nodePortAddresses: options.nodePortAddresses, podCidrs: options.clusterCidrs } } : {}),
  };
}

function interfaceAddresses(name: string): { ipv4?: string; ipv6?: string } {
  const addresses = networkInterfaces()[name];
  if (!addresses) throw badOption("--interface", `no interface ${JSON.stringify(name)} on this node`);
  const ipv4 = addresses.find((a) => a.family === "IPv4")?.address;
  // A link-local address is no DNAT target for connections from other links.
  const ipv6 = addresses.find((a) => a.family === "IPv6" && !a.address.startsWith("fe80"))?.address;
  return { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) };
}

/**
 * The node's addresses within --nodeport-addresses, where mesh serves health check node ports
 * (as kube-proxy binds them); empty without the flag: every address.
 */
export function nodePortHosts(options: Options): string[] {
  if (options.nodePortAddresses.length === 0) return [];
  const within = new BlockList();
  for (const cidr of options.nodePortAddresses) {
    const parsed = parseCidr(cidr)!; // validated by options.ts
    within.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return Object.values(networkInterfaces()).flatMap((addresses) =>
    (addresses ?? []).filter((a) => within.check(a.address, a.family === "IPv4" ? "ipv4" : "ipv6")).map((a) => a.address),
  );
}

export function captureDriver(options: Options, nft: NftOptions = {}): CaptureDriver {
  // The guard range changes as the pool grows; the Service CIDRs do not.
  let config = captureConfig(options, { first: options.capturePort, last: options.capturePort });
  const checked = checkConfig(config);
  return {
    read: () => readCaptureState(nft),
    install: async (listenPorts) => {
      config = captureConfig(options, listenPorts);
      await installCapture(config, nft);
    },
    update: (changes) => updateCapture(config, changes, nft),
    accepts: (entry) => {
      try {
        checkKey(checked, entry);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/**
 * Local mode's data-plane options, and `holderOf`: the Service port (its backend name,
 * `namespace:service:port`, as onlyfetch names backends) that holds a pool backend, so that what an
 * operator reads names Service ports, not pool backends; a free pool backend keeps its own name.
 * The holders are also written to claims.json beside --config whenever they change, for `status`
 * (HAProxy has no place for them, and status works without the sidecar).
 */
export function localOptions(options: Options, log: Logger, nft?: NftOptions): { readonly local: LocalOptions; holderOf(backend: string): string } {
  let holders = new Map<string, string>();
  let written = "";
  let writing = Promise.resolve();
  const onClaims = (claims: ReadonlyMap<string, string>): void => {
    holders = new Map([...claims].map(([servicePort, pool]) => [pool, servicePort]));
    const text = JSON.stringify(Object.fromEntries([...holders].sort(([a], [b]) => (a < b ? -1 : 1))), null, 1) + "\n";
    if (text === written) return;
    written = text;
    writing = writing.then(() => writeConfigAtomically(claimsPath(options.config), text)).catch((error: Error) => log.warn(`cannot write the claims for status: ${error.message}`));
  };
  return { local: { capture: captureDriver(options, nft), ...poolSettings(options), onClaims }, holderOf: (backend) => holders.get(backend) ?? backend };
}

function poolSettings(options: Options): Omit<LocalOptions, "capture"> {
  return {
    firstPort: options.capturePort,
    families: options.serviceCidrs.map((cidr) => (cidr.includes(":") ? "ipv6" : "ipv4")).sort(),
    minSlots: options.slots,
    defaultGroup: { mode: "tcp", algorithm: options.algorithm, affinity: 0 },
  };
}

/** The configuration `render` writes in local mode: a fresh pool, each claimed backend holding its Service port's endpoints. */
export function initialPool(options: Options, services: readonly Backend[]): RenderedBackend[] {
  const settings = poolSettings(options);
  return freshPool(services, settings).map((backend) => layoutBackend(backend));
}

/**
 * This node's zone for topology hints, read once (src/kube/node.ts says why). When the Node cannot
 * be read, hints are ignored (as kube-proxy does on a node without the label) and it says so.
 */
export async function nodeZone(options: Options, env: NodeJS.ProcessEnv, log: Logger): Promise<string | undefined> {
  try {
    const zone = await readNodeZone(loadKubeConfig(options.kubeconfig, env), options.nodeName);
    log.info(zone === undefined ? `Node ${options.nodeName} has no zone label: topology hints are not followed` : `Node ${options.nodeName} is in zone ${zone}: topology hints are followed`);
    return zone;
  } catch (error) {
    log.warn(`${(error as Error).message}; topology hints are not followed until the sidecar restarts`);
    return undefined;
  }
}
