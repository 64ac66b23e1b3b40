// How requests reach the API server: its URL, and for each request the TLS and authentication
// options, as plain values. No client-node object lives in the sidecar's process (README,
// Dependencies): in a Pod the service account is read natively (in-cluster.ts); a kubeconfig is
// read by client-node in a short-lived child process (kubeconfig.ts).

import { Agent as HttpAgent, type RequestOptions } from "node:http";
import { Agent as HttpsAgent } from "node:https";

export type ApiRequestOptions = RequestOptions & { headers: Record<string, string> };

export interface ApiAccess {
  /** The API server's URL, as configured (a changed server takes a restart). */
  readonly server: string;
  /** Options for the next request: the agent (TLS), headers (Authorization, Impersonate-User), basic auth. */
  requestOptions(): Promise<ApiRequestOptions>;
  /** The API server answered 401: the credentials are read again before the next request. */
  refused(): void;
}

/** The TLS side of the connection, as plain data (what client-node's applyToHTTPSOptions puts on an agent). */
export interface TlsSettings {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly pfx?: Buffer;
  readonly passphrase?: string;
  readonly rejectUnauthorized?: boolean;
  readonly servername?: string;
}

/**
 * One agent per set of credentials, as client-node made one per cluster and user: an http://
 * server gets a plain agent (client-node allows that only with insecure-skip-tls-verify, and
 * says so when the credentials are applied).
 */
export function agentFor(server: string, tls: TlsSettings): HttpAgent {
  return server.startsWith("http:") ? new HttpAgent() : new HttpsAgent(tls);
}
