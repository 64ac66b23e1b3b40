// Ports for Service frontends in the bench: many at once (10,000 Services), below the kernel's
// ephemeral range, and only ones nothing listens on right now. Another program may still take
// one before HAProxy binds it: `retryOnBindConflict` then runs the scenario again on new ports.

import { createServer } from "node:net";

/** `count` ports from `from` up on which a listener can bind `host` now. */
export async function listenablePorts(count: number, from = 20_000, host = "127.0.0.1"): Promise<number[]> {
  const ports: number[] = [];
  for (let next = from; ports.length < count; next += 256) {
    if (next + 256 > 32_768) throw new Error(`fewer than ${count} free ports between ${from} and 32767 on ${host}`);
    const batch = Array.from({ length: 256 }, (_, i) => next + i);
    const free = await Promise.all(batch.map((port) => canListen(host, port)));
    ports.push(...batch.filter((_, i) => free[i]));
  }
  return ports.slice(0, count);
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Runs `attempt` again (at most `tries` times) when HAProxy could not bind a port taken meanwhile. */
export async function retryOnBindConflict<T>(attempt: () => Promise<T>, log: (line: string) => void, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (i >= tries || !/Address already in use|cannot bind socket/i.test(message)) throw error;
      log(`a port was taken by another program meanwhile; picking ports again (attempt ${i + 1} of ${tries})`);
    }
  }
}
