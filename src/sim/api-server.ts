// A fake Kubernetes API server, just large enough for @kubernetes/client-node informers on
// core/v1 Services and discovery.k8s.io/v1 EndpointSlices. Tests, the benchmark and the demo
// share it, so it models the parts of the real apiserver that informers depend on:
//
// - one global resourceVersion counter for every kind (like an etcd revision); lists report it;
// - watches from a resourceVersion replay the retained event history, then stream live
//   events; a version older than the retained history gets "410 Gone / Expired";
// - label selectors on lists and watches, including the watch-cache rule that an update
//   moving an object out of (into) the selection is sent as DELETED (ADDED);
// - fault injection (dropped, stalled and expired watches, failing requests) and counters;
// - a Node read by name (GET /api/v1/nodes/NAME, what local mode reads for its zone): 404
//   NotFound when there is none; Nodes are not listed or watched (kube-haproxy only gets one).
//
// `limit` and `continue` paginate a list as the real apiserver does: every page comes from
// the snapshot the first page was taken at (kept until the last page is served), and all
// pages report that snapshot's resourceVersion. An unknown continue token gets 410 Gone. A
// list without `limit` returns every item in one page.

import { randomUUID } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";

export type Kind = "services" | "endpointslices";
/** The client-node type of each kind. Timestamps are RFC 3339 strings at runtime (raw JSON). */
export interface KindMap {
  services: V1Service;
  endpointslices: V1EndpointSlice;
}

export interface FakeApiServerOptions {
  /** Serve HTTPS with this PEM certificate and key (see makeTestCertificates); plain HTTP without. */
  tls?: { cert: string; key: string };
  /** If set, every request must carry `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** Watch events retained per kind for watches that start from an older version. Default 10,000. */
  historyLimit?: number;
  /** BOOKMARK interval for watches that ask with allowWatchBookmarks=true; 0 = never. Default 10,000 ms. */
  bookmarkIntervalMs?: number;
  /**
   * How a watch from a too-old resourceVersion is refused: "event" (default, what a real
   * apiserver does) answers 200 with one ERROR event carrying a 410 Status and ends the
   * stream; "status" answers a plain HTTP 410.
   */
  expiredWatch?: "event" | "status";
}

export interface RequestCounts {
  lists: number;
  watches: number;
}

type Labels = Record<string, string>;
interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; creationTimestamp?: string; labels?: Labels };
  [field: string]: unknown;
}
type EventType = "ADDED" | "MODIFIED" | "DELETED";
/** `prev`: the state before a MODIFIED event, to turn it into ADDED/DELETED for a selector. */
interface WatchEvent { type: EventType; rv: number; object: Obj; prev?: Obj }
/** `buffer`: lines held back while watches are paused; `timers`: timeoutSeconds and bookmarks. */
interface WatchStream { kind: Kind; filter: (o: Obj) => boolean; res: http.ServerResponse; buffer: string[]; timers: NodeJS.Timeout[] }

// The routes client-node uses: cluster-wide and namespaced lists/watches (path group 1 = namespace).
const KINDS = {
  services: { kind: "Service", apiVersion: "v1", path: /^\/api\/v1(?:\/namespaces\/([^/]+))?\/services\/?$/ },
  endpointslices: {
    kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1",
    path: /^\/apis\/discovery\.k8s\.io\/v1(?:\/namespaces\/([^/]+))?\/endpointslices\/?$/,
  },
} as const;
const KIND_NAMES = Object.keys(KINDS) as Kind[];
const NODE_PATH = /^\/api\/v1\/nodes\/([^/]+)$/;

const REASONS: Record<number, string> = {
  400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
  409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
  504: "Timeout",
};

export class FakeApiServer {
  readonly #opts: FakeApiServerOptions;
  #server: http.Server | undefined;
  #url = "";
  // Starts at 1 so that no list ever reports "0", which a watch would read as "any version".
  #rv = 1;
  readonly #store: Record<Kind, Map<string, Obj>> = { services: new Map(), endpointslices: new Map() };
  readonly #history: Record<Kind, WatchEvent[]> = { services: [], endpointslices: [] };
  /** A watch from version N is served iff N >= this: every event after N is still retained. */
  readonly #minWatchRv: Record<Kind, number> = { services: 0, endpointslices: 0 };
  readonly #streams = new Set<WatchStream>();
  readonly #nodes = new Map<string, Obj>();
  #nodeGets = 0;
  // Paginated lists in progress: continue token → the rest of the snapshot and its version.
  readonly #pages = new Map<string, { items: Obj[]; rv: number }>();
  #paused = false;
  #failures = { left: 0, status: 500 };
  readonly #counts: Record<Kind, RequestCounts> = { services: { lists: 0, watches: 0 }, endpointslices: { lists: 0, watches: 0 } };

  constructor(opts: FakeApiServerOptions = {}) {
    this.#opts = opts;
  }

  /** Base URL, e.g. `https://127.0.0.1:41234`; valid after start(). */
  get url(): string {
    return this.#url;
  }

  /** The current global resourceVersion (what a list would report now). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  async start(): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      try {
        this.#handle(req, res);
      } catch (err) {
        // A bug here must become a 500 for the client, not an uncaught exception in the test process.
        if (!res.headersSent) sendStatus(res, 500, String(err));
        else res.destroy();
      }
    };
    const tls = this.#opts.tls;
    const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler) : http.createServer(handler);
    server.listen(0, "127.0.0.1");
    await once(server, "listening"); // rejects on 'error'
    this.#server = server;
    this.#url = `${tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Closes every connection, watch streams included, so that nothing keeps the process alive. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.dropWatches();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // idle keep-alive sockets from the client's connection pools
    await closed;
  }

  // ---- the object store ----

  /** Creates or replaces an object (metadata.namespace defaults to "default"); returns the stored copy. */
  upsert<K extends Kind>(kind: K, obj: KindMap[K]): KindMap[K] {
    const o: Obj = { ...clone<Obj>(obj), apiVersion: KINDS[kind].apiVersion, kind: KINDS[kind].kind };
    const meta = (o.metadata ??= {});
    if (!meta.name) throw new Error(`FakeApiServer.upsert(${kind}): metadata.name is required`);
    meta.namespace ||= "default";
    const key = `${meta.namespace}/${meta.name}`;
    const prev = this.#store[kind].get(key);
    // uid and creationTimestamp are assigned on creation and survive updates, as in a real cluster.
    meta.uid = prev?.metadata?.uid ?? meta.uid ?? randomUUID();
    meta.creationTimestamp ??= prev?.metadata?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, "Z");
    meta.resourceVersion = String(++this.#rv);
    this.#store[kind].set(key, o);
    this.#emit(kind, prev ? { type: "MODIFIED", rv: this.#rv, object: o, prev } : { type: "ADDED", rv: this.#rv, object: o });
    return clone<KindMap[K]>(o);
  }

  /** Creates or replaces a Node (cluster-scoped), as GET /api/v1/nodes/NAME returns it. */
  upsertNode(node: V1Node): void {
    const o: Obj = { ...clone<Obj>(node), apiVersion: "v1", kind: "Node" };
    const meta = (o.metadata ??= {});
    if (!meta.name) throw new Error("FakeApiServer.upsertNode: metadata.name is required");
    meta.uid = this.#nodes.get(meta.name)?.metadata?.uid ?? randomUUID();
    meta.resourceVersion = String(++this.#rv);
    this.#nodes.set(meta.name, o);
  }

  /** GET /api/v1/nodes/NAME requests served so far (found or not). */
  get nodeGets(): number {
    return this.#nodeGets;
  }

  /** Deletes an object; returns its last state (with the deletion's resourceVersion), or undefined if absent. */
  remove<K extends Kind>(kind: K, namespace: string, name: string): KindMap[K] | undefined {
    const key = `${namespace}/${name}`;
    const prev = this.#store[kind].get(key);
    if (!prev) return undefined;
    this.#store[kind].delete(key);
    // Like the apiserver, the DELETED event carries the final state at the deletion's version.
    const o = withRv(prev, ++this.#rv);
    this.#emit(kind, { type: "DELETED", rv: this.#rv, object: o });
    return clone<KindMap[K]>(o);
  }

  get<K extends Kind>(kind: K, namespace: string, name: string): KindMap[K] | undefined {
    const o = this.#store[kind].get(`${namespace}/${name}`);
    return o && clone<KindMap[K]>(o);
  }

  /** All objects of a kind (optionally one namespace), sorted by namespace/name like etcd keys. */
  list<K extends Kind>(kind: K, namespace?: string): KindMap[K][] {
    return this.#sorted(kind)
      .filter((o) => namespace === undefined || o.metadata?.namespace === namespace)
      .map((o) => clone<KindMap[K]>(o));
  }

  /**
   * Forgets the event history: a watch from any version known before the call gets 410 Expired.
   * Compaction takes a version of its own, so that an informer that is fully up to date is
   * expired too, while a list made afterwards reports a version that can be watched.
   */
  compact(): void {
    this.#rv++;
    for (const kind of KIND_NAMES) {
      this.#history[kind] = [];
      this.#minWatchRv[kind] = this.#rv;
    }
  }

  // ---- fault injection ----

  /**
   * Ends every open watch. Abruptly by default (socket destroyed mid-stream: the client sees a
   * network error); with `graceful` the chunked response is finished properly, as when a
   * server-side watch timeout expires.
   */
  dropWatches(opts: { graceful?: boolean } = {}): void {
    for (const s of this.#streams) this.#closeStream(s, opts.graceful ? "end" : "destroy");
  }

  /** The next `n` list or watch requests (after authentication) answer `status` with a Status body. */
  failNext(n: number, status = 500): void {
    this.#failures = { left: n, status };
  }

  /** Stalls every watch, open or new: events are buffered per stream, nothing is written, no bookmarks. */
  pauseWatches(): void {
    this.#paused = true;
  }

  /** Writes what the paused watches buffered and streams live again. */
  resumeWatches(): void {
    this.#paused = false;
    for (const s of this.#streams) {
      if (s.buffer.length > 0) s.res.write(s.buffer.join(""));
      s.buffer = [];
    }
  }

  /** Writes `text` as it is to every open watch of `kind` (a broken stream, for tests). */
  writeToWatches(kind: Kind, text: string): void {
    for (const s of this.#streams) if (s.kind === kind) s.res.write(text);
  }

  /** compact() + dropWatches(): every re-watch from a known version gets 410, forcing a re-list. */
  expireAll(opts: { graceful?: boolean } = {}): void {
    this.compact();
    this.dropWatches(opts);
  }

  // ---- counters ----

  /** Requests per kind that passed authentication, injected failures included. */
  stats(): Record<Kind, RequestCounts> {
    return { services: { ...this.#counts.services }, endpointslices: { ...this.#counts.endpointslices } };
  }

  /** Watch streams currently open. */
  watchCount(): number {
    return this.#streams.size;
  }

  // ---- HTTP ----

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://fake");
    if (this.#opts.token !== undefined && req.headers.authorization !== `Bearer ${this.#opts.token}`) {
      return sendStatus(res, 401, "Unauthorized");
    }
    const nodeName = NODE_PATH.exec(url.pathname)?.[1];
    if (nodeName !== undefined) return this.#getNode(req, res, decodeURIComponent(nodeName));
    const kind = KIND_NAMES.find((k) => KINDS[k].path.test(url.pathname));
    if (!kind) return sendStatus(res, 404, `the server could not find the requested resource (${url.pathname})`);
    if (req.method !== "GET") return sendStatus(res, 405, `${req.method} is not supported by the fake`);
    const namespace = KINDS[kind].path.exec(url.pathname)?.[1];
    const q = url.searchParams;
    const watch = q.get("watch") === "true" || q.get("watch") === "1";
    this.#counts[kind][watch ? "watches" : "lists"]++;

    if (this.#failures.left > 0) {
      this.#failures.left--;
      return sendStatus(res, this.#failures.status, "injected failure");
    }
    let matches: (labels: Labels) => boolean;
    try {
      matches = parseLabelSelector(q.get("labelSelector") ?? "");
    } catch (err) {
      return sendStatus(res, 400, (err as Error).message);
    }
    const filter = (o: Obj) =>
      (namespace === undefined || o.metadata?.namespace === namespace) && matches(o.metadata?.labels ?? {});

    if (!watch) {
      const { apiVersion, kind: itemKind } = KINDS[kind];
      const token = q.get("continue");
      const snapshot = token ? this.#pages.get(token) : { items: this.#sorted(kind).filter(filter), rv: this.#rv };
      if (token) this.#pages.delete(token);
      if (!snapshot) return sendStatus(res, 410, "continue token expired or unknown");
      const limit = Number(q.get("limit") ?? 0);
      const items = limit > 0 ? snapshot.items.slice(0, limit) : snapshot.items;
      const metadata: { resourceVersion: string; continue?: string } = { resourceVersion: String(snapshot.rv) };
      if (items.length < snapshot.items.length) {
        metadata.continue = randomUUID();
        this.#pages.set(metadata.continue, { items: snapshot.items.slice(items.length), rv: snapshot.rv });
      }
      return sendJson(res, 200, { kind: `${itemKind}List`, apiVersion, metadata, items });
    }
    this.#watch(kind, q, filter, res);
  }

  #getNode(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
    if (req.method !== "GET") return sendStatus(res, 405, `${req.method} is not supported by the fake`);
    this.#nodeGets++;
    if (this.#failures.left > 0) {
      this.#failures.left--;
      return sendStatus(res, this.#failures.status, "injected failure");
    }
    const node = this.#nodes.get(name);
    if (!node) return sendStatus(res, 404, `nodes "${name}" not found`);
    sendJson(res, 200, node);
  }

  #watch(kind: Kind, q: URLSearchParams, filter: (o: Obj) => boolean, res: http.ServerResponse): void {
    const rvParam = q.get("resourceVersion") ?? "";
    // "" and "0" mean "any version": start with the current state as synthetic ADDED events.
    const from = rvParam === "" || rvParam === "0" ? undefined : Number(rvParam);
    if (from !== undefined && !(Number.isSafeInteger(from) && from > 0)) {
      return sendStatus(res, 400, `invalid resourceVersion: ${rvParam}`);
    }
    const expired = from !== undefined && from < this.#minWatchRv[kind];
    const tooOld = `too old resource version: ${from} (${this.#minWatchRv[kind]})`;
    if (expired && this.#opts.expiredWatch === "status") return sendStatus(res, 410, tooOld);

    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
    // Without this the client's fetch(), and with it informer.start(), waits for the first event.
    res.flushHeaders();
    if (expired) return void res.end(JSON.stringify({ type: "ERROR", object: statusBody(410, tooOld) }) + "\n");
    const s: WatchStream = { kind, filter, res, buffer: [], timers: [] };
    this.#streams.add(s);
    res.on("close", () => this.#closeStream(s, "none"));
    res.on("error", () => {}); // a client vanishing mid-write is normal for a watch; 'close' cleans up

    if (from === undefined) {
      for (const o of this.#sorted(kind)) if (filter(o)) this.#send(s, "ADDED", o);
    } else {
      for (const ev of this.#history[kind]) if (ev.rv > from) this.#deliver(s, ev);
    }
    const timeoutSeconds = Number(q.get("timeoutSeconds") ?? 0);
    if (timeoutSeconds > 0) s.timers.push(setTimeout(() => this.#closeStream(s, "end"), timeoutSeconds * 1000));
    const every = this.#opts.bookmarkIntervalMs ?? 10_000;
    if (q.get("allowWatchBookmarks") === "true" && every > 0) {
      const { kind: k, apiVersion } = KINDS[kind];
      s.timers.push(setInterval(() => {
        // The global version is safe to promise: every earlier event was written already (not paused).
        if (!this.#paused) this.#send(s, "BOOKMARK", { kind: k, apiVersion, metadata: { resourceVersion: String(this.#rv) } });
      }, every));
    }
  }

  #emit(kind: Kind, ev: WatchEvent): void {
    const log = this.#history[kind];
    log.push(ev);
    while (log.length > (this.#opts.historyLimit ?? 10_000)) this.#minWatchRv[kind] = log.shift()!.rv;
    for (const s of this.#streams) if (s.kind === kind) this.#deliver(s, ev);
  }

  /** Sends one stored event to one stream, through its namespace/label filter. */
  #deliver(s: WatchStream, ev: WatchEvent): void {
    const now = s.filter(ev.object);
    if (ev.type !== "MODIFIED" || ev.prev === undefined) {
      if (now) this.#send(s, ev.type, ev.object);
      return;
    }
    const before = s.filter(ev.prev);
    if (now) this.#send(s, before ? "MODIFIED" : "ADDED", ev.object);
    else if (before) this.#send(s, "DELETED", withRv(ev.prev, ev.rv)); // left the selection
  }

  #send(s: WatchStream, type: string, object: Obj): void {
    const line = JSON.stringify({ type, object }) + "\n";
    if (this.#paused) s.buffer.push(line);
    else s.res.write(line);
  }

  #closeStream(s: WatchStream, how: "end" | "destroy" | "none"): void {
    this.#streams.delete(s);
    for (const t of s.timers) clearTimeout(t); // clearTimeout also clears intervals
    s.timers = [];
    if (how === "end") s.res.end();
    else if (how === "destroy") s.res.destroy();
  }

  #sorted(kind: Kind): Obj[] {
    return [...this.#store[kind].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o);
  }
}

/**
 * Compiles a Kubernetes label selector: comma-separated requirements, all of which must hold.
 * Supports `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.
 * As in Kubernetes, `!=` and `notin` also match objects without the key. Throws on bad syntax.
 */
export function parseLabelSelector(selector: string): (labels: Labels) => boolean {
  const K = "([A-Za-z0-9][A-Za-z0-9_./-]*)";
  const V = "([A-Za-z0-9_.-]*)";
  const preds = selector
    .split(/,(?![^(]*\))/) // commas outside parentheses
    .map((r) => r.trim())
    .filter((r) => r !== "")
    .map((r): ((labels: Labels) => boolean) => {
      let m: RegExpExecArray | null;
      if ((m = new RegExp(`^(!?)\\s*${K}$`).exec(r))) {
        const [, not, key] = m as unknown as [string, string, string];
        return (l) => Object.hasOwn(l, key) !== (not === "!");
      }
      if ((m = new RegExp(`^${K}\\s*(==|=|!=)\\s*${V}$`).exec(r))) {
        const [, key, op, value] = m as unknown as [string, string, string, string];
        return op === "!=" ? (l) => l[key] !== value : (l) => l[key] === value;
      }
      if ((m = new RegExp(`^${K}\\s+(in|notin)\\s*\\(([^()]*)\\)$`).exec(r))) {
        const [, key, op, list] = m as unknown as [string, string, string, string];
        const values = new Set(list.split(",").map((v) => v.trim()));
        return op === "in" ? (l) => values.has(l[key] ?? "\0") : (l) => !values.has(l[key] ?? "\0");
      }
      throw new Error(`unable to parse requirement: ${JSON.stringify(r)}`);
    });
  return (labels) => preds.every((p) => p(labels));
}

function clone<T>(o: unknown): T {
  // A JSON round trip, not structuredClone: it also turns Dates from client-node classes into strings.
  return JSON.parse(JSON.stringify(o)) as T;
}

function withRv(o: Obj, rv: number): Obj {
  return { ...o, metadata: { ...o.metadata, resourceVersion: String(rv) } };
}

function statusBody(code: number, message: string) {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason: REASONS[code] ?? "Unknown", code };
}

function sendStatus(res: http.ServerResponse, code: number, message: string): void {
  sendJson(res, code, statusBody(code, message));
}

function sendJson(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
