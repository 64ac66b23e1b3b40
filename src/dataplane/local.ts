// Local mode's part of the data plane: the Service ports, their claims on the pool, and the
// kernel's capture map. dataplane.ts owns one and drives it inside its own syncs, in this order:
//
//   full read   HAProxy's backends ─► the pool it runs;  the capture map ─► what the kernel sends where
//   before      claims planned (pool.ts) ─► map elements of released claims, and of Service ports
//               left without endpoints, out; no-endpoint elements of the latter in ─► pool backends' endpoints
//   flush       (the data plane's own: set server …, or a reload when the pool must grow)
//   after       claims whose pool backend HAProxy now serves ─► their map elements in, their
//               no-endpoint elements out (the same transaction)
//
// So a new Service port's servers are ready before the kernel sends it anything, and a deleted
// one's element is gone before its slots go to maint (conntrack keeps established connections).
// A Service port without endpoints is not captured: the kernel refuses its connections at once
// (capture/no-endpoints.ts), where HAProxy would accept them and close them.
// The kernel map is the source of truth for claims across a sidecar restart.

import type { Backend } from "../model.ts";
import { entriesOf, entryId, planClaims, sameEntry, shortcutEntriesOf, poolDesired, parsePoolBackendName, sizePool, type NoEndpointEntry, type PoolBackend, type PoolEntry, type PoolSettings } from "./pool.ts";

/** What kube-haproxy's table holds: captured Service ports, and those without endpoints. */
export interface CaptureContents {
  readonly entries: readonly PoolEntry[];
  readonly noEndpoints: readonly NoEndpointEntry[];
}

/** Element changes, one transaction; removals name only the key. */
export interface CaptureUpdate {
  readonly remove: readonly PoolEntry[];
  readonly add: readonly PoolEntry[];
  readonly noEndpoints?: { readonly remove: readonly Omit<NoEndpointEntry, "verdict">[]; readonly add: readonly NoEndpointEntry[] };
}

/** The kernel side, injected (src/capture in production, the same in tests inside a network namespace). */
export interface CaptureDriver {
  /** The maps' elements; undefined when kube-haproxy's table is not there. */
  read(): Promise<CaptureContents | undefined>;
  /** Installs or replaces the rules for these listener ports, keeping the elements that fit. */
  install(listenPorts: { readonly first: number; readonly last: number }): Promise<void>;
  /** Element changes in one transaction. */
  update(changes: CaptureUpdate): Promise<void>;
  /** Whether an entry may be captured at all (a ClusterIP inside a --service-cidr; in mesh, external addresses and NodePorts too). */
  accepts(entry: { readonly ip?: string; readonly port: number }): boolean;
}

/**
 * firstPort: --capture-port, the first pool backend's listener port (the others follow it);
 * families: those of --service-cidr (a listener per family); minSlots: --slots per pool backend;
 * defaultGroup: that of a Service without annotations, always in the pool.
 */
export interface LocalOptions extends PoolSettings {
  readonly capture: CaptureDriver;
  /** Told the claims (Service port → pool backend) each time they are planned: who holds what, for metrics and logs. */
  readonly onClaims?: (claims: ReadonlyMap<string, string>) => void;
}

export class LocalPool {
  readonly #options: LocalOptions;
  readonly #services = new Map<string, Backend>();
  // Service port → pool backend name.
  #claims = new Map<string, string>();
  // The pool HAProxy should run: what it runs, grown when a group ran out.
  #pool: PoolBackend[] = [];
  // The kernel's map as last read or written: entryId → element.
  readonly #kernel = new Map<string, PoolEntry>();
  // The kernel's no-endpoint map as last read or written: entryId → element.
  readonly #noEndpoints = new Map<string, NoEndpointEntry>();
  // The last listener port the capture rules were installed for; undefined: install at the next read.
  #installedLast: number | undefined;
  // Service ports with a claim not yet in the kernel; Service ports whose ClusterIP we refuse (reported once).
  #waiting = 0;
  readonly #refused = new Set<string>();
  #dirty = true;

  constructor(options: LocalOptions) {
    this.#options = options;
  }

  setService(backend: Backend): void {
    this.#services.set(backend.name, backend);
    this.#dirty = true;
  }

  deleteService(name: string): void {
    this.#dirty = this.#services.delete(name) || this.#dirty;
  }

  /** Nothing waits: no Service port change to plan, no map element to add. */
  get settled(): boolean {
    return !this.#dirty && this.#waiting === 0;
  }

  /** Which pool backend serves a Service port, if any (for status and tests). */
  claimOf(service: string): string | undefined {
    return this.#claims.get(service);
  }

  /** After a full read of HAProxy: the pool it runs, and the kernel's map, read again (rules installed when needed). */
  async read(runningBackends: Iterable<string>): Promise<void> {
    const running = [...runningBackends].flatMap((name) => parsePoolBackendName(name) ?? []);
    const known = new Set(this.#pool.map((backend) => backend.name));
    this.#pool = [...this.#pool, ...running.filter((backend) => !known.has(backend.name))].sort((a, b) => a.listenPort - b.listenPort);
    if (this.#pool.length === 0) this.#pool = sizePool([], this.#services.values(), this.#options.defaultGroup, this.#options.firstPort);
    let contents = await this.#options.capture.read();
    // First read, the table gone (a cleanup, a reboot) or narrower than the pool: (re)install, keeping what fits.
    if (contents === undefined || this.#installedLast === undefined || this.#installedLast < this.#lastPort()) {
      await this.#install();
      contents = await this.#options.capture.read();
    }
    this.#kernel.clear();
    for (const entry of contents?.entries ?? []) this.#kernel.set(entryId(entry), entry);
    this.#noEndpoints.clear();
    for (const entry of contents?.noEndpoints ?? []) this.#noEndpoints.set(entryId(entry), entry);
    this.#dirty = true;
  }

  /**
   * Plans the claims; takes the elements of released or moved claims out of the kernel; returns
   * every pool backend as the data plane should want it (unchanged ones cost nothing there).
   */
  async before(): Promise<{ readonly backends: readonly Backend[]; readonly unclaimed: readonly string[] }> {
    const captured = new Map([...this.#kernel].map(([id, entry]) => [id, entry.listenPort]));
    let plan = planClaims({ services: this.#services, pool: this.#pool, claims: this.#claims, captured });
    if (plan.unclaimed.length > 0) {
      this.#pool = sizePool(this.#pool, this.#services.values(), this.#options.defaultGroup, this.#options.firstPort);
      plan = planClaims({ services: this.#services, pool: this.#pool, claims: this.#claims, captured });
    }
    this.#claims = plan.claims;
    this.#options.onClaims?.(this.#claims);
    this.#dirty = false;
    const wanted = this.#wanted();
    const remove = [...this.#kernel.values()].filter((entry) => !sameEntry(wanted.get(entryId(entry)), entry));
    // Only its source ranges changed: replaced in the same transaction, never uncaptured meanwhile.
    const replaced = remove.flatMap((entry) => {
      const want = wanted.get(entryId(entry));
      return want?.listenPort === entry.listenPort ? [want] : [];
    });
    const refuse = this.#noEndpointChanges(wanted);
    if (remove.length > 0 || refuse.remove.length > 0 || refuse.add.length > 0) {
      await this.#options.capture.update({ remove, add: replaced, noEndpoints: refuse });
      for (const entry of remove) this.#kernel.delete(entryId(entry));
      for (const entry of replaced) this.#kernel.set(entryId(entry), entry);
      this.#applyNoEndpoints(refuse);
    }
    const holders = new Map([...this.#claims].map(([service, pool]) => [pool, this.#services.get(service)]));
    const settings = { families: this.#options.families, minSlots: this.#options.minSlots };
    return { backends: this.#pool.map((backend) => poolDesired(backend, holders.get(backend.name), settings)), unclaimed: plan.unclaimed };
  }

  /** Adds the elements of the claims whose pool backend HAProxy serves now (`serving`), widening the rules first if the pool grew. */
  async after(serving: (poolBackend: string) => boolean): Promise<void> {
    const wanted = this.#wanted();
    const add: PoolEntry[] = [];
    let waiting = 0;
    for (const [id, entry] of wanted) {
      if (sameEntry(this.#kernel.get(id), entry)) continue;
      const pool = this.#pool.find((backend) => backend.listenPort === entry.listenPort);
      if (pool && serving(pool.name)) add.push(entry);
      else waiting++;
    }
    this.#waiting = waiting;
    // A no-endpoint element whose Service port is captured now goes out with the capture's element in.
    const adding = new Set(add.map(entryId));
    const unrefuse = [...this.#noEndpoints].filter(([id]) => this.#kernel.has(id) || adding.has(id)).map(([, entry]) => entry);
    if (add.length === 0 && unrefuse.length === 0) return;
    if (add.length > 0 && this.#lastPort() > (this.#installedLast ?? 0)) await this.#install();
    const noEndpoints = { remove: unrefuse, add: [] };
    await this.#options.capture.update({ remove: [], add, noEndpoints });
    for (const entry of add) this.#kernel.set(entryId(entry), entry);
    this.#applyNoEndpoints(noEndpoints);
  }

  /**
   * The no-endpoint elements to change before the flush: in for Service ports without endpoints
   * (or with a new verdict), out for those gone; a Service port's element waits for after() when
   * its capture element is still to come, so that its address is never left to nobody.
   */
  #noEndpointChanges(wanted: ReadonlyMap<string, PoolEntry>): { remove: NoEndpointEntry[]; add: NoEndpointEntry[] } {
    const want = new Map<string, NoEndpointEntry>();
    for (const service of this.#services.values()) {
      if (service.endpoints.length > 0) continue;
      for (const { ip, port } of entriesOf(service, 0)) {
        const entry = { ...(ip === undefined ? {} : { ip }), port, verdict: service.noEndpointVerdict ?? "reject" };
        if (this.#options.capture.accepts(entry)) want.set(entryId(entry), entry);
      }
    }
    // Kept: still wanted as it is, or its Service port has endpoints now and waits for its capture element.
    const kept = (id: string, entry: NoEndpointEntry): boolean => want.get(id)?.verdict === entry.verdict || (!want.has(id) && wanted.has(id));
    const remove = [...this.#noEndpoints].filter(([id, entry]) => !kept(id, entry)).map(([, entry]) => entry);
    const add = [...want].filter(([id, entry]) => this.#noEndpoints.get(id)?.verdict !== entry.verdict).map(([, entry]) => entry);
    return { remove, add };
  }

  #applyNoEndpoints(changes: { readonly remove: readonly NoEndpointEntry[]; readonly add: readonly NoEndpointEntry[] }): void {
    for (const entry of changes.remove) this.#noEndpoints.delete(entryId(entry));
    for (const entry of changes.add) this.#noEndpoints.set(entryId(entry), entry);
  }

  /** Why some Service ports cannot be captured, once each; for the log. */
  refusals(): string[] {
    const out: string[] = [];
    for (const [name, service] of this.#services) {
      const outside = service.binds.filter((bind) => !this.#options.capture.accepts({ ip: bind.address, port: bind.port }));
      if (outside.length === 0 || this.#refused.has(name)) continue;
      this.#refused.add(name);
      out.push(`${service.servicePort}: ${outside.map((bind) => bind.address).join(", ")} cannot be captured (outside --service-cidr, or special); not captured`);
    }
    return out;
  }

  /**
   * The elements every claim with endpoints needs (and the node's own ones of a nodeShortcut whose
   * backend has endpoints), by entryId; addresses outside the Service CIDRs left out. A Service
   * port without endpoints is refused by the kernel instead (#noEndpointChanges).
   */
  #wanted(): Map<string, PoolEntry> {
    const listenPorts = new Map(this.#pool.map((backend) => [backend.name, backend.listenPort]));
    const wanted = new Map<string, PoolEntry>();
    for (const [service, pool] of this.#claims) {
      const backend = this.#services.get(service)!;
      const shortcut = backend.nodeShortcut === undefined ? undefined : this.#claims.get(backend.nodeShortcut);
      const shortcutServed = shortcut !== undefined && (this.#services.get(backend.nodeShortcut!)?.endpoints.length ?? 0) > 0;
      const entries = [
        ...(backend.endpoints.length === 0 ? [] : entriesOf(backend, listenPorts.get(pool)!)),
        ...(shortcutServed ? shortcutEntriesOf(backend, listenPorts.get(shortcut)!) : []),
      ];
      for (const entry of entries) {
        if (this.#options.capture.accepts(entry)) wanted.set(entryId(entry), entry);
      }
    }
    return wanted;
  }

  /** The pool's highest listener port: the capture's guard covers firstPort to it. */
  #lastPort(): number {
    return this.#pool.reduce((last, backend) => Math.max(last, backend.listenPort), this.#options.firstPort);
  }

  async #install(): Promise<void> {
    const last = this.#lastPort();
    await this.#options.capture.install({ first: this.#options.firstPort, last });
    this.#installedLast = last;
  }
}
