// Options → local mode's parts: the capture configuration (src/capture), the data plane's pool
// settings with the kernel as its CaptureDriver, and the pool a fresh configuration renders.

import { BlockList } from "node:net";
import { networkInterfaces } from "node:os";
import { checkConfig, installCapture, readCapture, updateCapture, type CaptureConfig, type NftOptions } from "./capture/index.ts";
import { checkKey, parseCidr } from "./capture/spec.ts";
import type { CaptureDriver, LocalOptions } from "./dataplane/local.ts";
import { layoutBackend } from "./dataplane/planner.ts";
import { freshPool } from "./dataplane/pool.ts";
import type { RenderedBackend } from "./haproxy/render.ts";
import { badOption, type Options } from "./options.ts";
import type { Backend } from "./model.ts";

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
    read: () => readCapture(nft),
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

export function localOptions(options: Options, nft?: NftOptions): LocalOptions {
  return { capture: captureDriver(options, nft), ...poolSettings(options) };
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
