// A load generator for HAProxy frontends: HTTP clients on new connections and on keep-alive
// connections, counting every failure. Used by the reload tests and the bench.

import { Agent, request } from "node:http";

export interface ClientCounts {
  readonly sent: number;
  readonly failed: number;
  readonly errors: readonly string[];
  /** When each failed request was sent (performance.now()), ascending: in flight at a kill, or sent after it. */
  readonly failedStarts: readonly number[];
}

export interface LoadResult extends ClientCounts {
  /** The same, per kind of client: a new connection per request, or one keep-alive connection. */
  readonly newConnection: ClientCounts;
  readonly keepAlive: ClientCounts;
}

interface Counting {
  sent: number;
  failed: number;
  errors: string[];
  failedStarts: number[];
}

/** HTTP clients hammering `url` until stopped: `clients` on new connections and `keepAliveClients` keep-alive. */
export function startLoad(url: string, clients = 3, keepAliveClients = clients): { stop(): Promise<LoadResult> } {
  let running = true;
  const fresh = (): Counting => ({ sent: 0, failed: 0, errors: [], failedStarts: [] });
  const counts = { newConnection: fresh(), keepAlive: fresh() };
  const one = (agent: Agent | false): Promise<void> =>
    new Promise((resolve) => {
      const c = agent ? counts.keepAlive : counts.newConnection;
      c.sent++;
      const started = performance.now();
      const fail = (error: string): void => {
        c.failed++;
        c.errors.push(error);
        c.failedStarts.push(started);
      };
      const req = request(url, { agent, timeout: 5_000 }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => {
        fail(error.message);
        resolve();
      });
      req.end();
    });
  const loops: Promise<void>[] = [];
  const agents: Agent[] = [];
  for (let i = 0; i < clients; i++) {
    loops.push((async () => {
      while (running) await one(false);
    })());
  }
  for (let i = 0; i < keepAliveClients; i++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    loops.push((async () => {
      while (running) await one(agent);
    })());
  }
  const summary = (c: Counting): ClientCounts => ({ sent: c.sent, failed: c.failed, errors: [...new Set(c.errors)].slice(0, 5), failedStarts: [...c.failedStarts].sort((a, b) => a - b) });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
      const [n, k] = [summary(counts.newConnection), summary(counts.keepAlive)];
      const failedStarts = [...n.failedStarts, ...k.failedStarts].sort((a, b) => a - b);
      return { sent: n.sent + k.sent, failed: n.failed + k.failed, errors: [...new Set([...n.errors, ...k.errors])].slice(0, 5), failedStarts, newConnection: n, keepAlive: k };
    },
  };
}
