// Every flag of the CLI in one table: name, meaning, default, how to read it. Each flag can
// also come from the environment as KUBE_HAPROXY_<NAME> (--min-sync-period →
// KUBE_HAPROXY_MIN_SYNC_PERIOD); a flag on the command line wins. Values are validated here,
// at the door, so a bad one stops the program with one line naming the flag.

import { isIP } from "node:net";
import { KubeHaproxyError } from "./errors.ts";
import { parseSocketAddress } from "./haproxy/address.ts";
import { ALGORITHMS } from "./haproxy/algorithms.ts";
import type { ProxyMode } from "./model.ts";
import type { LogFormat, LogLevel } from "./log.ts";

export interface Options {
  readonly kubeconfig: string | undefined;
  readonly namespace: string | undefined;
  readonly proxyMode: ProxyMode;
  readonly socket: string;
  readonly masterSocket: string;
  readonly config: string;
  readonly slots: number;
  readonly algorithm: string;
  readonly minSyncPeriodMs: number;
  readonly configSyncPeriodMs: number;
  readonly minReloadPeriodMs: number;
  readonly bindAddress: string;
  readonly statsBindAddress: string;
  readonly user: string | undefined;
  readonly passwd: string | undefined;
  readonly kubeApiQps: number;
  readonly kubeApiBurst: number;
  readonly kubeApiContentType: string;
  readonly serviceProxyName: string | undefined;
  readonly reservedPorts: ReadonlySet<number>;
  readonly watchStallTimeoutMs: number;
  readonly metricsBindAddress: string;
  readonly healthzBindAddress: string;
  readonly haproxyBinary: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

interface Flag {
  readonly description: string;
  readonly default?: string;
  readonly alias?: string;
}

/** The flags, by long name. Order is the order of --help. */
export const FLAGS = {
  kubeconfig: { description: "Path to a kubeconfig; default: in-cluster, then $KUBECONFIG or ~/.kube/config" },
  namespace: { description: "Watch only this namespace (default: all)" },
  "proxy-mode": { description: "onlyfetch (built), local or mesh (not yet: refused at start)", default: "onlyfetch" },
  socket: { description: "HAProxy runtime API: a Unix socket path or host:port", default: "/var/run/haproxy/runtime.sock", alias: "backend-addr" },
  "master-socket": { description: "HAProxy master CLI socket (reloads for structural changes)", default: "/var/run/haproxy/master.sock" },
  config: { description: "The haproxy.cfg that `render` writes and reloads use", default: "/var/run/haproxy/haproxy.cfg" },
  slots: { description: "Least number of server slots per Service port", default: "16" },
  algorithm: { description: "Default balance algorithm", default: "roundrobin" },
  "min-sync-period": { description: "Least time between two syncs to HAProxy (0s: at once)", default: "0s" },
  "config-sync-period": { description: "How often to re-read HAProxy's state and repair drift", default: "1m" },
  "min-reload-period": { description: "Least time between two reloads for structural changes", default: "2s" },
  "bind-address": { description: "onlyfetch: address of the Service frontends", default: "0.0.0.0" },
  "stats-bind-address": { description: "HAProxy stats page and /healthz (host:port, empty: none)", default: "127.0.0.1:8404" },
  user: { description: "User for the HAProxy stats page" },
  passwd: { description: "Password for the HAProxy stats page (never logged)" },
  "kube-api-qps": { description: "Requests per second to the API server (lists and watch restarts)", default: "5" },
  "kube-api-burst": { description: "Burst of requests to the API server", default: "10" },
  "kube-api-content-type": { description: "Content type for the API server (only application/json)", default: "application/json" },
  "service-proxy-name": { description: "Also serve Services labelled service.kubernetes.io/service-proxy-name=<this>" },
  "reserved-ports": {
    description: "Ports no Service frontend may bind (ranges a-b), besides kube-haproxy's own",
    default: "22,2379-2380,6443,10248-10260",
  },
  "watch-stall-timeout": { description: "Restart a watch that saw nothing (not even a reconnect) for this long", default: "5m" },
  "metrics-bind-address": { description: "Prometheus metrics (host:port, empty: off)", default: "127.0.0.1:10266" },
  "healthz-bind-address": { description: "/healthz and /livez (host:port, empty: off)", default: "0.0.0.0:10267" },
  "haproxy-binary": { description: "haproxy executable used to check a configuration before a reload", default: "haproxy" },
  "log-level": { description: "error, warn, info or debug", default: "info" },
  "log-format": { description: "text or json", default: "text" },
} as const satisfies Record<string, Flag>;

export type FlagName = keyof typeof FLAGS;
export type RawFlags = Partial<Record<FlagName, string | undefined>>;

export function envName(flag: string): string {
  return `KUBE_HAPROXY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

function bad(flag: string, message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_BAD_OPTION", `--${flag}: ${message}`);
}

/** Flag value, else environment, else default. */
function raw(flags: RawFlags, env: NodeJS.ProcessEnv, flag: FlagName): string | undefined {
  const fromFlag = flags[flag];
  if (fromFlag !== undefined) return fromFlag;
  const fromEnv = env[envName(flag)];
  if (fromEnv !== undefined) return fromEnv;
  return "default" in FLAGS[flag] ? (FLAGS[flag] as Flag).default : undefined;
}

/** Go-style durations: 0, 500ms, 5s, 1m, 2h22m, 1.5s. Returns milliseconds. */
export function parseDuration(text: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  if (text === "0") return 0;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) throw new Error(`not a duration: ${JSON.stringify(text)} (e.g. 0s, 500ms, 5s, 1m, 2h22m)`);
  return parts.reduce((total, [, value, u]) => total + Number(value) * unit[u!]!, 0);
}

export function resolveOptions(flags: RawFlags, env: NodeJS.ProcessEnv = {}): Options {
  const get = (flag: FlagName): string | undefined => raw(flags, env, flag);
  const text = (flag: FlagName): string => get(flag) ?? "";
  const duration = (flag: FlagName): number => {
    try {
      return parseDuration(text(flag));
    } catch (error) {
      throw bad(flag, (error as Error).message);
    }
  };
  const integer = (flag: FlagName, min: number, max: number): number => {
    const value = Number(text(flag));
    if (!/^\d+$/.test(text(flag)) || value < min || value > max) throw bad(flag, `must be a whole number from ${min} to ${max}, not ${JSON.stringify(text(flag))}`);
    return value;
  };
  const oneOf = <T extends string>(flag: FlagName, values: readonly T[]): T => {
    const value = text(flag);
    if (!(values as readonly string[]).includes(value)) throw bad(flag, `must be one of ${values.join(", ")}, not ${JSON.stringify(value)}`);
    return value as T;
  };
  // host:port with an IP address, as the runtime socket's TCP form is read (haproxy/address.ts).
  const listenPorts: number[] = [];
  const hostPort = (flag: FlagName): string => {
    const value = text(flag);
    if (value === "") return value;
    const parsed = parseSocketAddress(value);
    if (!("host" in parsed) || value.startsWith(":") || isIP(parsed.host) === 0 || parsed.port > 65535) {
      throw bad(flag, `must be host:port with an IP address, not ${JSON.stringify(value)}`);
    }
    listenPorts.push(parsed.port);
    return value;
  };

  const algorithm = text("algorithm");
  if (!ALGORITHMS.has(algorithm)) throw bad("algorithm", `unknown balance algorithm ${JSON.stringify(algorithm)} (one of ${[...ALGORITHMS].join(", ")})`);
  const bindAddress = text("bind-address");
  if (isIP(bindAddress) === 0) throw bad("bind-address", `must be an IP address, not ${JSON.stringify(bindAddress)}`);
  const contentType = text("kube-api-content-type");
  if (contentType !== "application/json") {
    throw bad("kube-api-content-type", `only application/json is supported (the JavaScript client has no protobuf), not ${JSON.stringify(contentType)}`);
  }
  const user = get("user");
  const passwd = get("passwd");
  if ((user === undefined) !== (passwd === undefined)) throw bad(user === undefined ? "user" : "passwd", "--user and --passwd go together");
  const socket = text("socket");
  if (socket === "") throw bad("socket", "must not be empty");
  const qps = Number(text("kube-api-qps"));
  if (!(qps > 0)) throw bad("kube-api-qps", `must be a positive number, not ${JSON.stringify(text("kube-api-qps"))}`);

  const reservedPorts = new Set<number>();
  for (const part of text("reserved-ports").split(",").filter(Boolean)) {
    const range = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    const [from, to] = [Number(range?.[1]), Number(range?.[2] ?? range?.[1])];
    if (!range || from < 1 || to > 65535 || from > to) throw bad("reserved-ports", `must be ports and ranges like 22,10248-10260, not ${JSON.stringify(part)}`);
    for (let port = from; port <= to; port++) reservedPorts.add(port);
  }
  const statsBindAddress = hostPort("stats-bind-address");
  const metricsBindAddress = hostPort("metrics-bind-address");
  const healthzBindAddress = hostPort("healthz-bind-address");
  // Our own listeners share the node's network with every frontend.
  for (const port of listenPorts) if (port > 0) reservedPorts.add(port);

  return {
    kubeconfig: get("kubeconfig") || undefined,
    namespace: get("namespace") || undefined,
    proxyMode: oneOf("proxy-mode", ["onlyfetch", "local", "mesh"] as const),
    socket,
    masterSocket: text("master-socket"),
    config: text("config"),
    slots: integer("slots", 1, 10_000),
    algorithm,
    minSyncPeriodMs: duration("min-sync-period"),
    configSyncPeriodMs: duration("config-sync-period"),
    minReloadPeriodMs: duration("min-reload-period"),
    bindAddress,
    statsBindAddress,
    user,
    passwd,
    kubeApiQps: qps,
    kubeApiBurst: integer("kube-api-burst", 1, 10_000),
    kubeApiContentType: contentType,
    serviceProxyName: get("service-proxy-name") || undefined,
    reservedPorts,
    watchStallTimeoutMs: duration("watch-stall-timeout"),
    metricsBindAddress,
    healthzBindAddress,
    haproxyBinary: text("haproxy-binary"),
    logLevel: oneOf("log-level", ["error", "warn", "info", "debug"] as const),
    logFormat: oneOf("log-format", ["text", "json"] as const),
  };
}

/** The options as safe to log: the password is never printed. */
export function redacted(options: Options): Record<string, unknown> {
  return { ...options, passwd: options.passwd === undefined ? undefined : "<redacted>" };
}
