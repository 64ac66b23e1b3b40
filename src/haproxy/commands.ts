// Builders for every runtime command kube-haproxy sends. Each one validates what it puts on
// the wire: HAProxy's CLI splits on spaces and `;` and unescapes `\`, so a Kubernetes name or
// annotation that carried any of them could inject a second command. Nothing unvalidated
// ever reaches runtime-client.ts.

import { isIP } from "node:net";
import { KubeHaproxyError } from "../errors.ts";
import type { HealthCheck } from "../model.ts";

/** What a successful reply looks like; anything else is an error for that command. */
export type Expect = "empty" | "addr-changed" | "server-added" | "server-deleted" | "any";

export interface RuntimeCommand {
  readonly line: string;
  readonly expect: Expect;
}

/** A slot's administrative state as the runtime API names it. */
export type ServerState = "ready" | "drain" | "maint";

const SERVER_STATES: ReadonlySet<string> = new Set(["ready", "drain", "maint"]);

// HAProxy identifiers: letters, digits, '-', '_', '.', ':' (cfgparse's invalid_char()).
const IDENTIFIER = /^[A-Za-z0-9_.:-]+$/;
/** Longer names are refused; names.ts shortens long Service names with a hash to fit. */
export const MAX_NAME_LENGTH = 100;

function invalid(what: string, value: unknown): KubeHaproxyError {
  return new KubeHaproxyError("E_INVALID_IDENTIFIER", `invalid ${what}: ${JSON.stringify(value)}`);
}

export function checkName(what: "backend" | "server" | "frontend", value: string): string {
  if (typeof value !== "string" || value.length > MAX_NAME_LENGTH || !IDENTIFIER.test(value)) {
    throw invalid(`${what} name`, value);
  }
  return value;
}

export function checkAddress(value: string): string {
  // isIP() accepts IPv6 zone ids ("fe80::1%eth0"); a zone is never a pod address.
  if (typeof value !== "string" || isIP(value) === 0 || value.includes("%")) throw invalid("IP address", value);
  return value;
}

export function checkPort(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw invalid("port", value);
  return value;
}

export function checkState(value: string): ServerState {
  if (!SERVER_STATES.has(value)) throw invalid("server state", value);
  return value as ServerState;
}

function server(backend: string, name: string): string {
  return `${checkName("backend", backend)}/${checkName("server", name)}`;
}

export function setServerAddr(backend: string, name: string, ip: string, port: number): RuntimeCommand {
  return {
    line: `set server ${server(backend, name)} addr ${checkAddress(ip)} port ${checkPort(port)}`,
    expect: "addr-changed",
  };
}

export function setServerState(backend: string, name: string, state: ServerState): RuntimeCommand {
  return { line: `set server ${server(backend, name)} state ${checkState(state)}`, expect: "empty" };
}

export function showServersState(backend?: string): RuntimeCommand {
  return {
    line: backend === undefined ? "show servers state" : `show servers state ${checkName("backend", backend)}`,
    expect: "any",
  };
}

/**
 * A dynamic server (HAProxy ≥ 2.6). `default-server` does not apply to it, so the caller
 * passes every parameter the template servers have (the health check); it starts in
 * maintenance, and its check stays off until `enableHealth` (send that before `state ready`).
 */
export function addServer(backend: string, name: string, ip: string, port: number, healthCheck?: HealthCheck): RuntimeCommand {
  const check = healthCheck === undefined ? "" : ` ${healthCheckParams(healthCheck)}`;
  return {
    line: `add server ${server(backend, name)} ${checkAddress(ip).includes(":") ? `[${ip}]` : ip}:${checkPort(port)} disabled${check}`,
    expect: "server-added",
  };
}

/** Starts the health check of a server added with `check` (HAProxy leaves it off). */
export function enableHealth(backend: string, name: string): RuntimeCommand {
  return { line: `enable health ${server(backend, name)}`, expect: "empty" };
}

/**
 * The server parameters of a health check: a TCP connect every interval. A check that gets no
 * answer times out after one interval (HAProxy's rule without `timeout check`), two failures in
 * a row mark the server DOWN (the second check runs a quarter interval after the first failure),
 * two successes bring it back. So a host that vanished (packets dropped) is DOWN within ~3.25 intervals, a
 * refused connection within ~1.25, and a single lost packet marks nothing.
 */
export function healthCheckParams({ intervalMs }: HealthCheck): string {
  // The Kubernetes side decides the range (kube/translate.ts); here only what HAProxy can take.
  if (!Number.isInteger(intervalMs) || intervalMs < 4 || intervalMs > 86_400_000) throw invalid("health check interval (ms)", intervalMs);
  const fast = Math.round(intervalMs / 4);
  return `check inter ${intervalMs}ms fastinter ${fast}ms downinter ${intervalMs}ms fall 2 rise 2`;
}

export function delServer(backend: string, name: string): RuntimeCommand {
  return { line: `del server ${server(backend, name)}`, expect: "server-deleted" };
}
