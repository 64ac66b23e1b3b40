// The bootstrap configuration: pure text from the desired model. The same input renders the
// same bytes. Every backend gets template slots (s1…sN); the endpoints known at render time are
// written into their slots, so a fresh HAProxy serves at once and a reload never starts empty.
//
// A Service port with binds is one `listen` section named like its backend: HAProxy 3.3+
// refuse a frontend and a backend of the same name (a warning from 3.1), and the runtime API
// addresses servers as <proxy>/<server> either way. Without binds (no bind address to serve
// on) it is a plain `backend`. The output is valid and warning-free for `haproxy -c` on 2.6,
// 3.0, 3.2 and 3.4 (test/render.test.ts checks the version under test).

import { createHash } from "node:crypto";
import { formatHostPort as hostPort } from "../address.ts";
import { KubeHaproxyError } from "../errors.ts";
import { structureOf, type Backend, type Bind, type Endpoint } from "../model.ts";
import { parseSocketAddress } from "./address.ts";
import { checkAddress, checkName, checkPort, healthCheckParams } from "./commands.ts";
import { SLOT_PREFIX, slotName } from "./names.ts";

export interface RenderOptions {
  /** Runtime API: a Unix socket path or host:port. */
  readonly runtimeSocket: string;
  /** The stats page and HAProxy's own health check (`/healthz`); undefined: none. */
  readonly stats?: { readonly bind: Bind; readonly user?: string; readonly passwd?: string };
  /** Idle timeout of runtime connections; the sidecar keeps one open. @default "24h" */
  readonly runtimeIdleTimeout?: string;
  /** A connection that fails to connect is retried this often, each time on another endpoint. @default 3 */
  readonly connectRetries?: number;
  /** HAProxy's worker threads; undefined: HAProxy's default, one per core. */
  readonly nbthread?: number;
}

/** A backend as rendered: its slot count and the endpoints already placed in slots. */
export interface RenderedBackend {
  readonly backend: Backend;
  readonly slots: number;
  readonly filled: ReadonlyMap<number, Endpoint>;
}

const USERLIST = "kube-haproxy-stats";

/** Set in `global` to the structure hash: `show env` tells which structure the running worker has. */
export const STRUCTURE_ENV = "KUBE_HAPROXY_STRUCTURE";

/** Set in HAProxy's environment when it runs as root by design (deploy/base/daemonset.yaml). */
export const ROOT_ON_PURPOSE = "KUBE_HAPROXY_ROOT_ON_PURPOSE";

export function renderConfig(backends: readonly RenderedBackend[], options: RenderOptions): string {
  const out = renderPreamble(backends, options);
  for (const rendered of sortedByName(backends)) out.push(...renderBackend(rendered));
  return out.join("\n").replace(/\n+$/, "") + "\n";
}

/** Sections sort by backend name: the same input renders the same bytes. */
export function sortedByName(backends: readonly RenderedBackend[]): RenderedBackend[] {
  return [...backends].sort((a, b) => (a.backend.name < b.backend.name ? -1 : a.backend.name > b.backend.name ? 1 : 0));
}

/** global, defaults and the stats frontend: everything before the Service sections. */
export function renderPreamble(backends: readonly RenderedBackend[], options: RenderOptions): string[] {
  const out: string[] = [
    "# Rendered by kube-haproxy. Endpoint changes are applied at runtime; do not edit.",
    "global",
    `  setenv ${STRUCTURE_ENV} ${structureHash(backends.map((rendered) => rendered.backend), options)}`,
    `  stats socket ${socketAddress(options.runtimeSocket)} mode 660 level admin expose-fd listeners`,
    `  stats timeout ${options.runtimeIdleTimeout ?? "24h"}`,
    ...threadLines(options.nbthread),
    // HAProxy's own events (server state changes, a proxy without servers, alerts) on stdout,
    // where `kubectl logs` finds them; `notice` leaves out the per-connection traffic logs.
    "  log stdout format raw local0 notice",
    // HAProxy 3.3+ warn at every start as root without `user`/`uid`. deploy/ runs HAProxy as
    // uid 0 on purpose (Service ports below 1024, every capability dropped but
    // NET_BIND_SERVICE, so no chroot either) and says so through this variable; anywhere
    // else the warning stays, as it should.
    `  .if defined(${ROOT_ON_PURPOSE})`,
    "    uid 0",
    "  .endif",
    "",
    "defaults",
    "  log global",
    "  mode tcp",
    "  timeout connect 5s",
    // Service connections may idle for long (databases, streams); kube-proxy has no idle cut.
    "  timeout client 1h",
    "  timeout server 1h",
    "  timeout tunnel 1h",
    "  timeout http-request 30s",
    "  timeout http-keep-alive 60s",
    ...failoverLines(options.connectRetries ?? 3),
    "",
  ];
  if (options.stats) out.push(...renderStats(options.stats));
  return out;
}

/**
 * A hash of everything in the configuration that only a reload can change: each backend's
 * structure (model.ts, structureOf) and the global settings. Endpoints and slot counts are not
 * part of it. Set in the running worker's environment (STRUCTURE_ENV), so that the sidecar
 * knows, even after its own restart, whether what runs matches the cluster.
 */
export function structureHash(backends: readonly Backend[], options: RenderOptions): string {
  const structure = backends.map(structureOf).sort();
  return createHash("sha256").update(JSON.stringify([structure, options])).digest("hex").slice(0, 16);
}

function renderStats(stats: NonNullable<RenderOptions["stats"]>): string[] {
  const out: string[] = [];
  const auth = stats.user !== undefined && stats.passwd !== undefined;
  if (auth) out.push(`userlist ${USERLIST}`, `  user ${checkCredential("user", stats.user!)} insecure-password ${checkCredential("passwd", stats.passwd!)}`, "");
  out.push("frontend stats", `  bind ${bindAddress(stats.bind)}`, "  mode http", "  monitor-uri /healthz");
  if (auth) out.push(`  http-request auth realm kube-haproxy unless { http_auth(${USERLIST}) }`);
  out.push("  stats enable", "  stats uri /", "  stats refresh 10s", "");
  return out;
}

function renderBackend(rendered: RenderedBackend): string[] {
  return renderProxy(rendered, (bind) => `  bind ${bindAddress(bind)}`);
}

/**
 * One Service port's section: `listen` with its binds (each written by `bindLine`), or a plain
 * `backend` without any; then how it balances, its affinity, its health check and its servers.
 */
export function renderProxy(rendered: RenderedBackend, bindLine: (bind: Bind) => string): string[] {
  const { backend } = rendered;
  const name = checkName("backend", backend.name);
  const out = [`${backend.binds.length > 0 ? "listen" : "backend"} ${name}`];
  for (const bind of backend.binds) out.push(bindLine(bind));
  out.push(`  mode ${backend.mode}`);
  // Keep-alive clients would see resets when a reload closes idle connections (DESIGN.md).
  if (backend.mode === "http" && backend.binds.length > 0) out.push("  option idle-close-on-response");
  out.push(`  balance ${backend.algorithm}`);
  if (backend.affinityTimeoutSeconds !== undefined) {
    // ClientIP affinity; type ipv6 also holds IPv4 clients (as ::ffff:a.b.c.d).
    out.push(`  stick-table type ipv6 size 1m expire ${Math.trunc(backend.affinityTimeoutSeconds)}s`, "  stick on src");
  }
  // Template slots and written-out servers take it from here; dynamic servers do not (commands.ts).
  if (backend.healthCheck) out.push(`  default-server ${healthCheckParams(backend.healthCheck)}`);
  out.push(...renderServers(rendered));
  return out;
}

/**
 * A backend's servers: its filled slots written out, runs of empty ones as server-template lines.
 * A draining endpoint is written disabled: a new process has no old connections to keep, and
 * the sidecar sets `drain` right after the reload.
 */
export function renderServers({ slots, filled }: RenderedBackend): string[] {
  const out: string[] = [];
  let emptyFrom = 0;
  const flushEmpty = (to: number): void => {
    if (emptyFrom > 0) out.push(`  server-template ${SLOT_PREFIX} ${emptyFrom}-${to} 0.0.0.0:0 disabled`);
    emptyFrom = 0;
  };
  for (let slot = 1; slot <= slots; slot++) {
    const endpoint = filled.get(slot);
    if (!endpoint) {
      if (emptyFrom === 0) emptyFrom = slot;
      continue;
    }
    flushEmpty(slot - 1);
    const address = hostPort(checkAddress(endpoint.ip), checkPort(endpoint.port));
    out.push(`  server ${slotName(slot)} ${address}${endpoint.state === "ready" ? "" : " disabled"}`);
  }
  flushEmpty(slots);
  out.push("");
  return out;
}

/**
 * kube-proxy cannot retry: a connection to a pod that died before its endpoint was removed
 * fails. HAProxy retries a connection that failed to connect (refused, unreachable, timed out;
 * in http mode only those too: `retry-on` stays `conn-failure`), and `redispatch 1` sends every
 * retry to another endpoint instead of the same dead one a second later.
 */
function failoverLines(retries: number): string[] {
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_CONNECT_RETRIES) {
    throw new KubeHaproxyError("E_BAD_OPTION", `connect retries must be a whole number from 0 to ${MAX_CONNECT_RETRIES}, not ${JSON.stringify(retries)}`);
  }
  return [`  retries ${retries}`, "  option redispatch 1"];
}

export const MAX_CONNECT_RETRIES = 20;

/**
 * Every thread keeps its own state per server: on 2.6 ~0.9 KB per slot per thread, so HAProxy's
 * default of one thread per core costs a 64-core node ~60 KB per slot (README, Sizing).
 * 64 is 2.6's most threads without thread groups.
 */
function threadLines(nbthread: number | undefined): string[] {
  if (nbthread === undefined) return [];
  if (!Number.isInteger(nbthread) || nbthread < 1 || nbthread > MAX_NBTHREAD) {
    throw new KubeHaproxyError("E_BAD_OPTION", `nbthread must be a whole number from 1 to ${MAX_NBTHREAD}, not ${JSON.stringify(nbthread)}`);
  }
  return [`  nbthread ${nbthread}`];
}

export const MAX_NBTHREAD = 64;

function socketAddress(address: string): string {
  const parsed = parseSocketAddress(address);
  if ("host" in parsed) return `ipv${parsed.host.includes(":") ? 6 : 4}@${hostPort(checkAddress(parsed.host), checkPort(parsed.port))}`;
  if (!/^[A-Za-z0-9_./-]+$/.test(address)) {
    throw new KubeHaproxyError("E_BAD_OPTION", `runtime socket path may hold only letters, digits and _ . / -: ${JSON.stringify(address)}`);
  }
  return address;
}

export function bindAddress(bind: Bind): string {
  return hostPort(checkAddress(bind.address), checkPort(bind.port));
}

// Written into the configuration: no spaces, quotes, '#' or backslashes that could end the word.
export function checkCredential(what: string, value: string): string {
  if (!/^[\x21-\x7e]+$/.test(value) || /["'#\\]/.test(value)) {
    throw new KubeHaproxyError("E_BAD_OPTION", `--${what} may hold only printable characters without spaces, quotes, '#' or '\\'`);
  }
  return value;
}
