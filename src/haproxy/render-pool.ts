// Local mode's configuration: the same global settings as render.ts, then one `listen` section
// per pool backend, binding its own listener port (the capture sends a Service port's ClusterIPs
// there). `listen`, not a frontend and a backend of one name: HAProxy 3.3+ refuse those.

import { checkName } from "./commands.ts";
import { bindAddress, renderPreamble, renderServers, sortedByName, type RenderedBackend, type RenderOptions } from "./render.ts";

export function renderPoolConfig(backends: readonly RenderedBackend[], options: RenderOptions): string {
  const out = renderPreamble(backends, options);
  for (const rendered of sortedByName(backends)) out.push(...renderListen(rendered));
  return out.join("\n").replace(/\n+$/, "") + "\n";
}

function renderListen(rendered: RenderedBackend): string[] {
  const { backend } = rendered;
  const out = [`listen ${checkName("backend", backend.name)}`];
  // A wildcard IPv6 bind would also take IPv4 unless v6only: each family binds its own socket.
  for (const bind of backend.binds) out.push(`  bind ${bindAddress(bind)}${bind.address.includes(":") ? " v6only" : ""}`);
  out.push(`  mode ${backend.mode}`, `  balance ${backend.algorithm}`);
  // Keep-alive clients would see resets when a reload closes idle connections (DESIGN.md).
  if (backend.mode === "http") out.push("  option idle-close-on-response");
  if (backend.affinityTimeoutSeconds !== undefined) {
    // ClientIP affinity; type ipv6 also holds IPv4 clients (as ::ffff:a.b.c.d).
    out.push(`  stick-table type ipv6 size 1m expire ${Math.trunc(backend.affinityTimeoutSeconds)}s`, "  stick on src");
  }
  out.push(...renderServers(rendered));
  return out;
}
