// Requests to the API server over node:http(s), authenticated with what the kubeconfig or the
// service account gives (api-access.ts; a 401 has the credentials read again), and
// the list: page by page (`limit`/`continue`), each page parsed, handed on item by item, and
// dropped, so that a large cluster is never held twice at startup. Every page comes from one
// consistent snapshot, the first page's (the API server keeps it for the continue token).

import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { KubeHaproxyError } from "../errors.ts";
import type { ApiAccess } from "./api-access.ts";

const LIST_PAGE = 500;
const LIST_TIMEOUT_MS = 60_000;

/** The API server's URL for `path` with `query` (undefined values left out). */
export function apiUrl(access: ApiAccess, path: string, query: Record<string, string | undefined>): URL {
  const url = new URL(access.server.replace(/\/$/, "") + path);
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
  return url;
}

/**
 * A GET with the kubeconfig's credentials; resolves with the response headers (any status).
 * `sent` receives the request at once, so that its owner can abort it before any answer.
 */
export async function apiGet(access: ApiAccess, url: URL, timeoutMs?: number, sent?: (req: ClientRequest) => void): Promise<{ readonly req: ClientRequest; readonly res: IncomingMessage }> {
  const options: RequestOptions = await access.requestOptions();
  const headers = { ...options.headers, accept: "application/json" };
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { ...options, headers, method: "GET", ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) }, (res) => {
      if (res.statusCode === 401) access.refused();
      resolve({ req, res });
    });
    req.on("timeout", () => req.destroy(new KubeHaproxyError("E_API_REQUEST", `GET ${url.pathname}: no answer in ${Math.round((timeoutMs ?? 0) / 1000)} s`)));
    req.on("error", reject);
    sent?.(req);
    req.end();
  });
}

/** The whole body as text. */
export function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.on("error", reject);
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

/** A response that is not 200 as the error to report (status and the start of the body). */
export async function httpError(url: URL, res: IncomingMessage): Promise<KubeHaproxyError> {
  const status = res.statusCode ?? 0;
  const body = await readBody(res).catch(() => "");
  return new KubeHaproxyError("E_API_REQUEST", `GET ${url.pathname}: HTTP ${status} ${body.slice(0, 200)}`, { status });
}

/**
 * Lists every object at `path`, page by page, calling `onItem` with each raw item (plain JSON)
 * as its page arrives; resolves with the snapshot's resourceVersion.
 */
export async function listEach(access: ApiAccess, path: string, labelSelector: string | undefined, onItem: (item: unknown) => void): Promise<string | undefined> {
  let continueToken: string | undefined;
  let resourceVersion: string | undefined;
  do {
    const url = apiUrl(access, path, { limit: String(LIST_PAGE), labelSelector, continue: continueToken });
    const { res } = await apiGet(access, url, LIST_TIMEOUT_MS);
    if (res.statusCode !== 200) throw await httpError(url, res);
    const body = await readBody(res);
    let page: { items?: unknown[]; metadata?: { resourceVersion?: string; continue?: string } };
    try {
      page = JSON.parse(body) as typeof page;
    } catch (error) {
      throw new KubeHaproxyError("E_API_REQUEST", `GET ${url.pathname}: unreadable JSON`, { status: 200, cause: error });
    }
    for (const item of page.items ?? []) onItem(item);
    resourceVersion ??= page.metadata?.resourceVersion;
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return resourceVersion;
}
