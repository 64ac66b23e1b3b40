// The bootstrap configuration: pure text from the desired model. The same input renders the
// same bytes. Every backend gets template slots (s1…sN); the endpoints known at render time are
// written into their slots, so a fresh HAProxy serves at once and a reload never starts empty.

import { createHash } from "node:crypto";
import { formatHostPort as hostPort } from "../address.ts";
import { KubeHaproxyError } from "../errors.ts";
import { structureOf, type Backend, type Bind, type Endpoint } from "../model.ts";
import { parseSocketAddress } from "./address.ts";
import { checkAddress, checkName, checkPort } from "./commands.ts";
import { SLOT_PREFIX, slotName } from "./names.ts";

export interface RenderOptions {
  /** Runtime API: a Unix socket path or host:port. */
  readonly runtimeSocket: string;
  /** The stats page and HAProxy's own health check (`/healthz`); undefined: none. */
  readonly stats?: { readonly bind: Bind; readonly user?: string; readonly passwd?: string };
  /** Idle timeout of runtime connections; the sidecar keeps one open. @default "24h" */
  readonly runtimeIdleTimeout?: string;
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
    "",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    // Service connections may idle for long (databases, streams); kube-proxy has no idle cut.
    "  timeout client 1h",
    "  timeout server 1h",
    "  timeout tunnel 1h",
    "  timeout http-request 30s",
    "  timeout http-keep-alive 60s",
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

function renderBackend({ backend, slots, filled }: RenderedBackend): string[] {
  const name = checkName("backend", backend.name);
  const out = [`frontend ${name}`];
  for (const bind of backend.binds) out.push(`  bind ${bindAddress(bind)}`);
  out.push(`  mode ${backend.mode}`);
  // Keep-alive clients would see resets when a reload closes idle connections (DESIGN.md).
  if (backend.mode === "http") out.push("  option idle-close-on-response");
  out.push(`  default_backend ${name}`, "", `backend ${name}`, `  mode ${backend.mode}`, `  balance ${backend.algorithm}`);
  if (backend.affinityTimeoutSeconds !== undefined) {
    // ClientIP affinity; type ipv6 also holds IPv4 clients (as ::ffff:a.b.c.d).
    out.push(`  stick-table type ipv6 size 1m expire ${Math.trunc(backend.affinityTimeoutSeconds)}s`, "  stick on src");
  }
  out.push(...renderServers({ backend, slots, filled }));
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
