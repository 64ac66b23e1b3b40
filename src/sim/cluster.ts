// A simulated cluster: the fake API server over HTTPS with a throwaway CA, and a kubeconfig
// that points the real client at it.

import { join } from "node:path";
import { FakeApiServer } from "./api-server.ts";
import { makeTestCertificates } from "./certs.ts";
import { DEFAULT_TEST_TOKEN, writeKubeconfig } from "./kubeconfig.ts";

export interface SimulatedCluster {
  readonly api: FakeApiServer;
  readonly kubeconfig: string;
  stop(): Promise<void>;
}

/**
 * HTTPS with a throwaway CA (as real clusters are) by default; `tls: false` serves plain HTTP on
 * loopback with `insecure-skip-tls-verify`, for machines without openssl (the demo falls back).
 */
export async function startSimulatedCluster(dir: string, options: { bookmarkIntervalMs?: number; tls?: boolean; expiredWatch?: "event" | "status" } = {}): Promise<SimulatedCluster> {
  const tls = options.tls === false ? undefined : await makeTestCertificates(dir);
  const api = new FakeApiServer({ tls: tls && { cert: tls.cert, key: tls.key }, token: DEFAULT_TEST_TOKEN, bookmarkIntervalMs: options.bookmarkIntervalMs, expiredWatch: options.expiredWatch });
  await api.start();
  const kubeconfig = join(dir, "kubeconfig");
  await writeKubeconfig(kubeconfig, { server: api.url, ca: tls?.ca });
  return { api, kubeconfig, stop: () => api.stop() };
}
