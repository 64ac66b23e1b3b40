// Local mode's configuration: the same global settings as render.ts, then one `listen` section
// per pool backend, binding its own listener port (the capture sends a Service port's ClusterIPs
// there). `listen`, not a frontend and a backend of one name: HAProxy 3.3+ refuse those.

import { bindAddress, renderPreamble, renderProxy, sortedByName, type RenderedBackend, type RenderOptions } from "./render.ts";

export function renderPoolConfig(backends: readonly RenderedBackend[], options: RenderOptions): string {
  const out = renderPreamble(backends, options);
  for (const rendered of sortedByName(backends)) out.push(...renderListen(rendered));
  return out.join("\n").replace(/\n+$/, "") + "\n";
}

/** A wildcard IPv6 bind would also take IPv4 unless v6only: each family binds its own socket. */
function renderListen(rendered: RenderedBackend): string[] {
  return renderProxy(rendered, (bind) => `  bind ${bindAddress(bind)}${bind.address.includes(":") ? " v6only" : ""}`);
}
