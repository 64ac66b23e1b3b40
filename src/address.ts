// Addresses as flags, HAProxy and URLs write them: host:port, with an IPv6 address in brackets.
// One grammar for every flag and listener, one formatter for every place that prints one.

import { isIPv4, isIPv6 } from "node:net";

export interface HostPort {
  /** undefined: every interface (`:port`). */
  readonly host: string | undefined;
  readonly port: number;
}

/** `ip:port`, or `[ipv6]:port`. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/;
const HOST_PORT = /^(?:\[(?<ipv6>[^\]]*)\]|(?<host>[^:[\]]*)):(?<port>\d{1,5})$/;

/** `host:port`, `[ipv6]:port` or `:port`; undefined for anything else. */
export function parseHostPort(text: string): HostPort | undefined {
  const match = HOST_PORT.exec(text);
  if (!match) return undefined;
  const { ipv6, host = "", port = "" } = match.groups ?? {};
  const hostOk = ipv6 !== undefined ? isIPv6(ipv6) : host === "" || isIPv4(host) || HOSTNAME.test(host);
  if (!hostOk || Number(port) > 65535) return undefined;
  return { host: ipv6 ?? (host || undefined), port: Number(port) };
}
