// Every error kube-haproxy raises on purpose: one class, literal codes, the useful fields.
// Callers branch on `code`, never on message text.

export type ErrorCode =
  | "E_INVALID_IDENTIFIER" // a name, address, port or state refused before it reached the wire
  | "E_COMMAND_REJECTED" // HAProxy answered a command with an error or an unexpected text
  | "E_COMMAND_TIMEOUT" // no reply within the per-command timeout
  | "E_CONNECTION_CLOSED" // the runtime connection broke with commands in flight
  | "E_NOT_CONNECTED" // a command was sent while no connection was up
  | "E_LINE_TOO_LONG" // a request line does not fit HAProxy's tune.bufsize
  | "E_PROTOCOL" // a reply arrived with nothing waiting for it, or the peer is not the runtime API
  | "E_REPLY_TOO_LARGE" // more reply text than the client holds without a complete reply
  | "E_UNREADABLE_REPLY" // a reply HAProxy sent cannot be parsed (show servers state, show proc)
  | "E_BAD_OPTION" // a flag or option value is invalid, or the kubeconfig it points to
  | "E_USAGE" // an unknown command or flag, a flag without its value, a stray argument
  | "E_API_UNAVAILABLE" // the API server did not give its lists within render's --timeout
  | "E_API_REQUEST" // a request to the Kubernetes API server failed (`status`: its HTTP status)
  | "E_HAPROXY_UNREACHABLE" // nothing answers as HAProxy's runtime API on --socket
  | "E_CONFIG_INVALID" // haproxy -c refused a rendered configuration (or could not run)
  | "E_RELOAD_FAILED" // the master CLI reload did not produce a new worker
  | "E_CAPTURE_FAILED"; // nft could not run, refused a ruleset, or printed what we cannot read

export class KubeHaproxyError extends Error {
  override readonly name = "KubeHaproxyError";
  readonly code: ErrorCode;
  /** The runtime command concerned, if any. */
  readonly command: string | undefined;
  /** HAProxy's own reply text, if any. */
  readonly reply: string | undefined;
  /** The HTTP status of a failed API request, if any. */
  readonly status: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    details: { command?: string; reply?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.command = details.command;
    this.reply = details.reply;
    this.status = details.status;
  }
}

export function isKubeHaproxyError(err: unknown, code?: ErrorCode): err is KubeHaproxyError {
  return err instanceof KubeHaproxyError && (code === undefined || err.code === code);
}
