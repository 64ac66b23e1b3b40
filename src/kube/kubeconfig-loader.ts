// Run as its own short-lived process by kubeconfig.ts: `node kubeconfig-loader.ts <request>`.
// Reads a kubeconfig with @kubernetes/client-node (every auth method: certificates, tokens,
// token files, exec plugins, auth providers), applies it to request options once, prints them
// as one JSON line and exits, so that the package's ~85 MB (its generated models) never stay in
// the sidecar's process (README, Dependencies).

import { KubeConfig } from "@kubernetes/client-node";
import type { LoaderAnswer, LoaderRequest, WireCredentials } from "./kubeconfig.ts";

function answer(request: LoaderRequest): Promise<LoaderAnswer> | LoaderAnswer {
  const { source } = request;
  const kubeConfig = new KubeConfig();
  try {
    if (request.path !== undefined) kubeConfig.loadFromFile(request.path);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split("\n")[0];
    return { ok: false, message: `${source}: not a usable kubeconfig (${reason})` };
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) {
    const context = kubeConfig.getCurrentContext();
    const why = context ? `its current-context ${JSON.stringify(context)} names no cluster` : "it sets no current-context";
    return { ok: false, message: `${source}: no current cluster (${why})` };
  }
  if (!URL.canParse(cluster.server)) {
    return { ok: false, message: `${source}: cluster ${JSON.stringify(cluster.name)} has no valid server URL (${JSON.stringify(cluster.server ?? "")})` };
  }
  const user = kubeConfig.getCurrentUser();
  return credentials(kubeConfig).then((credentials) => ({
    ok: true,
    server: cluster.server,
    proxy: Boolean(cluster.proxyUrl),
    // What client-node would renew by itself, so the sidecar loads again now and then.
    dynamic: Boolean(user?.exec || user?.authProvider),
    credentials,
  }));
}

/** What applyToHTTPSOptions sets, as plain data; a failure (an exec plugin that fails, a missing file) as its message. */
async function credentials(kubeConfig: KubeConfig): Promise<WireCredentials | { readonly error: string }> {
  const options: { headers: Record<string, string>; [key: string]: unknown } = { headers: {} };
  try {
    await kubeConfig.applyToHTTPSOptions(options);
  } catch (error) {
    return { error: ((error as Error).message ?? String(error)).split("\n")[0] ?? "" };
  }
  const bytes = (value: unknown): string | undefined =>
    typeof value === "string" || Buffer.isBuffer(value) ? Buffer.from(value).toString("base64") : undefined;
  return {
    ca: bytes(options.ca),
    cert: bytes(options.cert),
    key: bytes(options.key),
    pfx: bytes(options.pfx),
    passphrase: typeof options.passphrase === "string" ? options.passphrase : undefined,
    rejectUnauthorized: typeof options.rejectUnauthorized === "boolean" ? options.rejectUnauthorized : undefined,
    servername: typeof options.servername === "string" ? options.servername : undefined,
    headers: options.headers,
    auth: typeof options.auth === "string" ? options.auth : undefined,
  };
}

const result = await answer(JSON.parse(process.argv[2] ?? "{}") as LoaderRequest);
// Exit at once: client-node may leave an agent or a timer behind.
process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
