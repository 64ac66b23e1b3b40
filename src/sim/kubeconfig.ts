// Writes a kubeconfig pointing at the fake API server. JSON is valid YAML, so no YAML
// library is needed, and `KubeConfig.loadFromFile()` reads it as is.

import { writeFile } from "node:fs/promises";

export interface KubeconfigOptions {
  /** API server URL, e.g. `FakeApiServer.url`. */
  server: string;
  /** PEM of the CA that signed the server certificate; without it TLS verification is skipped (use for http://). */
  ca?: string;
  /** Bearer token for the user; default "kube-haproxy-test-token". Match FakeApiServer's `token` option. */
  token?: string;
  /** Namespace of the context; default "default". */
  namespace?: string;
}

export const DEFAULT_TEST_TOKEN = "kube-haproxy-test-token";

export async function writeKubeconfig(path: string, opts: KubeconfigOptions): Promise<void> {
  const cluster: Record<string, unknown> = { server: opts.server };
  if (opts.ca !== undefined) {
    cluster["certificate-authority-data"] = Buffer.from(opts.ca).toString("base64");
  } else {
    // client-node refuses an http:// server unless this is set.
    cluster["insecure-skip-tls-verify"] = true;
  }
  const config = {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "fake",
    clusters: [{ name: "fake", cluster }],
    users: [{ name: "fake", user: { token: opts.token ?? DEFAULT_TEST_TOKEN } }],
    contexts: [
      { name: "fake", context: { cluster: "fake", user: "fake", namespace: opts.namespace ?? "default" } },
    ],
  };
  await writeFile(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
}
