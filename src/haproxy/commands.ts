// Builders for every runtime command kube-haproxy sends. Each one validates what it puts on
// the wire: HAProxy's CLI splits on spaces and `;` and unescapes `\`, so a Kubernetes name or
// annotation that carried any of them could inject a second command. Nothing unvalidated
// ever reaches runtime-client.ts.

import { formatHostPort } from "../address.ts";
import { KubeHaproxyError } from "../errors.ts";
import { MAX_NAME_LENGTH, isEndpointAddress, isPort, type HealthCheck } from "../model.ts";

/**
 * What a successful reply looks like; anything else is an error for that command. "any" is an
 * open-ended reply (free text that may hold "\n> "): the client sends it on a connection of its
 * own. "info" is `show info`'s "Key: value" lines: safe on the shared prompt connection, which
 * is the one whose worker it must name (reload.ts).
 */
export type Expect = "empty" | "addr-changed" | "server-added" | "server-deleted" | "info" | "any";

export interface RuntimeCommand {
  readonly line: string;
  readonly expect: Expect;
  /**
   * An open-ended reply ("any") handed over chunk by chunk as it arrives instead of held whole:
   * the reply is then empty. For `show servers state` of a large HAProxy (~14 MB at 160,000
   * servers), read while HAProxy writes it and never held as one string.
   */
  readonly stream?: (chunk: string) => void;
}

/** A slot's administrative state as the runtime API names it. */
export type ServerState = "ready" | "drain" | "maint";

const SERVER_STATES: ReadonlySet<string> = new Set(["ready", "drain", "maint"]);

// HAProxy identifiers: letters, digits, '-', '_', '.', ':' (cfgparse's invalid_char()); longer
// names than MAX_NAME_LENGTH are refused (model.ts shortens long Service names to fit).
const IDENTIFIER = /^[A-Za-z0-9_.:-]+$/;
// Environment variable names we read back (`show env`).
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

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
  if (!isEndpointAddress(value)) throw invalid("IP address", value);
  return value;
}

export function checkPort(value: number): number {
  if (!isPort(value)) throw invalid("port", value);
  return value;
}

export function checkState(value: string): ServerState {
  if (!SERVER_STATES.has(value)) throw invalid("server state", value);
  return value as ServerState;
}

/**
 * Commands for the servers of one backend. Its name is validated once here, not per command (a
 * flush builds every command of a backend from one of these); every server name, address, port
 * and state is still validated in each command.
 */
export interface ServerCommands {
  setAddr(server: string, ip: string, port: number): RuntimeCommand;
  setState(server: string, state: ServerState): RuntimeCommand;
  /**
   * A dynamic server (HAProxy ≥ 2.6). `default-server` does not apply to it, so the caller
   * passes every parameter the template servers have (the health check); it starts in
   * maintenance, and its check stays off until `enableHealth` (send that before `state ready`).
   */
  add(server: string, ip: string, port: number, healthCheck?: HealthCheck): RuntimeCommand;
  /** Starts the health check of a server added with `check` (HAProxy leaves it off). */
  enableHealth(server: string): RuntimeCommand;
  del(server: string): RuntimeCommand;
}

export function serverCommands(backend: string): ServerCommands {
  const prefix = `${checkName("backend", backend)}/`;
  const server = (name: string): string => prefix + checkName("server", name);
  return {
    setAddr: (name, ip, port) => ({ line: `set server ${server(name)} addr ${checkAddress(ip)} port ${checkPort(port)}`, expect: "addr-changed" }),
    setState: (name, state) => ({ line: `set server ${server(name)} state ${checkState(state)}`, expect: "empty" }),
    add: (name, ip, port, healthCheck) => {
      const check = healthCheck === undefined ? "" : ` ${healthCheckParams(healthCheck)}`;
      return { line: `add server ${server(name)} ${formatHostPort(checkAddress(ip), checkPort(port))} disabled${check}`, expect: "server-added" };
    },
    enableHealth: (name) => ({ line: `enable health ${server(name)}`, expect: "empty" }),
    del: (name) => ({ line: `del server ${server(name)}`, expect: "server-deleted" }),
  };
}

export function setServerAddr(backend: string, name: string, ip: string, port: number): RuntimeCommand {
  return serverCommands(backend).setAddr(name, ip, port);
}

export function setServerState(backend: string, name: string, state: ServerState): RuntimeCommand {
  return serverCommands(backend).setState(name, state);
}

export function showServersState(backend?: string, stream?: (chunk: string) => void): RuntimeCommand {
  return {
    line: backend === undefined ? "show servers state" : `show servers state ${checkName("backend", backend)}`,
    expect: "any",
    ...(stream ? { stream } : {}),
  };
}

/** A dynamic server: ServerCommands.add. */
export function addServer(backend: string, name: string, ip: string, port: number, healthCheck?: HealthCheck): RuntimeCommand {
  return serverCommands(backend).add(name, ip, port, healthCheck);
}

export function enableHealth(backend: string, name: string): RuntimeCommand {
  return serverCommands(backend).enableHealth(name);
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
  return serverCommands(backend).del(name);
}

/** Why HAProxy refused `del server`: it still has connections (try later), or anything else. */
export function delServerRefusal(reply: string): "has-connections" | "other" {
  return /still has connections/i.test(reply) ? "has-connections" : "other";
}

/** Why HAProxy refused `add server`: the backend's algorithm takes no dynamic servers, or anything else. */
export function addServerRefusal(reply: string): "not-dynamic" | "other" {
  return /dynamic load balancing/i.test(reply) ? "not-dynamic" : "other";
}

/** `show env NAME`: the running worker's environment, as its configuration's `setenv` set it. */
export function showEnv(name: string): RuntimeCommand {
  if (!ENV_NAME.test(name)) throw invalid("environment variable name", name);
  return { line: `show env ${name}`, expect: "any" };
}

/** The value in a `show env NAME` reply (`NAME=value`); undefined when the variable is not set. */
export function parseShowEnv(name: string, body: string): string | undefined {
  const prefix = `${name}=`;
  return body.split("\n").find((line) => line.startsWith(prefix))?.slice(prefix.length);
}

/** `show info`: the worker's process information (its `Pid:` tells which worker answers). */
export function showInfo(): RuntimeCommand {
  return { line: "show info", expect: "info" };
}

/** The `Pid:` of a `show info` reply. */
export function parseInfoPid(body: string): number | undefined {
  const match = /^Pid: (\d+)$/m.exec(body);
  return match ? Number(match[1]) : undefined;
}
