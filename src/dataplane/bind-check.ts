// The reload's pre-flight: a bind HAProxy does not hold yet is tried from here first, so a
// Service port that cannot bind is left out instead of failing the whole reload (on 2.6 each
// failed reload pauses every listener of the running worker for ~2 s). The sidecar shares the
// node's network namespace with HAProxy (deploy/), so what fails here fails there.

import { createServer } from "node:net";
import { formatHostPort } from "../address.ts";
import type { Backend, Bind } from "../model.ts";

/** undefined: the address can be bound (or we cannot tell); else why not (an errno code). */
export type BindProbe = (bind: Bind) => Promise<string | undefined>;

// Only these say the bind would fail for HAProxy too. EACCES (a port below 1024 as non-root)
// is ours, not HAProxy's, and anything else is not known to be fatal: inconclusive, not skipped.
const UNBINDABLE = new Set(["EADDRINUSE", "EADDRNOTAVAIL"]);

/** Binds `bind` exclusively and closes it at once. */
export const probeBind: BindProbe = (bind) =>
  new Promise((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code !== undefined && UNBINDABLE.has(error.code) ? error.code : undefined));
    server.listen({ host: bind.address, port: bind.port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });

export function bindKey(bind: Bind): string {
  return formatHostPort(bind.address, bind.port);
}

/** Backends with a bind not in `held` that `probe` cannot bind: name → "address:port (code)". */
export async function unbindable(backends: readonly Backend[], held: ReadonlySet<string>, probe: BindProbe): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  await Promise.all(
    backends.flatMap((backend) =>
      backend.binds
        .filter((bind) => !held.has(bindKey(bind)))
        .map(async (bind) => {
          const code = await probe(bind);
          if (code !== undefined && !found.has(backend.name)) found.set(backend.name, `${bindKey(bind)} (${code})`);
        }),
    ),
  );
  return found;
}

/**
 * The proxies a refused reload's ALERT lines say could not bind (2.8+), with HAProxy's line:
 * "Binding [...] for proxy default:blocked:40849: protocol tcpv4: cannot bind socket (...) for [...]".
 */
export function proxiesThatCannotBind(message: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of message.split(/\n| \| /)) {
    const match = /for proxy (\S+?): .*cannot bind/.exec(line);
    if (match && !found.has(match[1]!)) found.set(match[1]!, line.trim());
  }
  return found;
}
