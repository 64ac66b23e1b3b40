// The cluster as last seen: Services by ns/name and their EndpointSlices grouped by the
// Service they belong to (label kubernetes.io/service-name), as kube-proxy's
// endpointslicecache does. Events update it; translate() reads one Service at a time, so a
// slice change costs the size of its Service, not of the cluster.

import type { V1EndpointSlice, V1Service } from "./objects.ts";
import { prepareService, serviceKey, sliceServiceKey, translateService, type PreparedService, type ServiceTranslation, type TranslateOptions } from "./translate.ts";
import type { WatchEventType } from "./watch.ts";

export class ClusterState {
  readonly #services = new Map<string, V1Service>();
  // service key → slice key (ns/name) → slice
  readonly #slices = new Map<string, Map<string, V1EndpointSlice>>();
  // What each Service alone decides (translate.ts), kept until the Service changes: a slice change re-reads slices only.
  readonly #prepared = new Map<string, PreparedService>();

  /** Records a Service event; returns the Service's key. */
  applyService(type: WatchEventType, service: V1Service): string {
    const key = serviceKey(service);
    this.#prepared.delete(key);
    if (type === "delete") this.#services.delete(key);
    else this.#services.set(key, service);
    return key;
  }

  /** Records a slice event; returns the key of the Service it belongs to, if any. */
  applySlice(type: WatchEventType, slice: V1EndpointSlice): string | undefined {
    const owner = sliceServiceKey(slice);
    if (owner === undefined) return undefined;
    const key = serviceKey(slice);
    let slices = this.#slices.get(owner);
    if (type === "delete") {
      slices?.delete(key);
      if (slices?.size === 0) this.#slices.delete(owner);
    } else {
      if (!slices) this.#slices.set(owner, (slices = new Map()));
      slices.set(key, slice);
    }
    return owner;
  }

  serviceKeys(): string[] {
    return [...this.#services.keys()].sort();
  }

  /** The Service's desired backends, or undefined when the Service does not exist. */
  translate(key: string, options: TranslateOptions): ServiceTranslation | undefined {
    const service = this.#services.get(key);
    if (!service) return undefined;
    let prepared = this.#prepared.get(key);
    if (prepared?.service !== service || prepared.options !== options) this.#prepared.set(key, (prepared = prepareService(service, options)));
    return translateService(service, [...(this.#slices.get(key)?.values() ?? [])], options, prepared);
  }
}
