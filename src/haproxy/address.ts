// A runtime API address as users write it: a Unix socket path, or host:port for TCP
// (the seed's --backend-addr). One parser for the client, the renderer and the tools.

export type SocketAddress = { readonly path: string } | { readonly host: string; readonly port: number };

export function parseSocketAddress(address: string): SocketAddress {
  const tcp = /^\[?([^\]/]*?)\]?:(\d{1,5})$/.exec(address);
  if (tcp && !address.includes("/")) return { host: tcp[1] || "127.0.0.1", port: Number(tcp[2]) };
  return { path: address };
}
