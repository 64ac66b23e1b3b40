// A runtime API address as users write it: a Unix socket path, or host:port for TCP
// (the seed's --backend-addr). One reading for the client, the renderer and the tools.

import { parseHostPort } from "../address.ts";

export type SocketAddress = { readonly path: string } | { readonly host: string; readonly port: number };

export function parseSocketAddress(address: string): SocketAddress {
  if (address.includes("/")) return { path: address };
  const tcp = parseHostPort(address);
  if (tcp) return { host: tcp.host ?? "127.0.0.1", port: tcp.port };
  // `host:99999` is no path either: a TCP address as written, for the option check to refuse.
  const port = /:(\d+)$/.exec(address)?.[1];
  return port === undefined ? { path: address } : { host: address.slice(0, -port.length - 1), port: Number(port) };
}
