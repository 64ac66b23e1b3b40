// A runtime API address as users write it: a Unix socket path, or host:port for TCP
// (the seed's --backend-addr). One reading for the client, the renderer and the tools.

import { parseHostPort } from "../address.ts";

export type SocketAddress = { readonly path: string } | { readonly host: string; readonly port: number };

export function parseSocketAddress(address: string): SocketAddress {
  const tcp = address.includes("/") ? undefined : parseHostPort(address);
  return tcp ? { host: tcp.host ?? "127.0.0.1", port: tcp.port } : { path: address };
}
