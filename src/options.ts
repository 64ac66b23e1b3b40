// Every flag of the CLI in one table: name, meaning, default, which commands take it. Each flag
// can also come from the environment as KUBE_HAPROXY_<NAME> (--min-sync-period →
// KUBE_HAPROXY_MIN_SYNC_PERIOD); a flag on the command line wins. Values are validated here,
// at the door, so a bad one stops the program with one line naming the flag, or the variable
// when the value came from the environment.

import { isIP } from "node:net";
import { hostname } from "node:os";
import { parseCidr } from "./capture/spec.ts";
import { KubeHaproxyError } from "./errors.ts";
import { parseSocketAddress } from "./haproxy/address.ts";
import { checkCredential, MAX_CONNECT_RETRIES, MAX_NBTHREAD } from "./haproxy/render.ts";
import { ALGORITHMS } from "./haproxy/algorithms.ts";
import { parseHealthCheck, type HealthCheck, type ProxyMode } from "./model.ts";
import type { LogFormat, LogLevel } from "./log.ts";

/** Which Services get a frontend: those labelled kube-haproxy.io/expose=true, or all. */
export type Exposure = "labelled" | "all";

export interface Options {
  readonly kubeconfig: string | undefined;
  readonly namespace: string | undefined;
  readonly proxyMode: ProxyMode;
  readonly expose: Exposure;
  readonly socket: string;
  readonly masterSocket: string;
  readonly config: string;
  readonly takeOver: boolean;
  readonly slots: number;
  /** HAProxy's `nbthread`; undefined: HAProxy's own default (one thread per core). */
  readonly nbthread: number | undefined;
  readonly algorithm: string;
  /** Health checks of Service ports without the annotation; undefined: none. */
  readonly healthCheck: HealthCheck | undefined;
  readonly connectRetries: number;
  readonly minSyncPeriodMs: number;
  readonly configSyncPeriodMs: number;
  readonly minReloadPeriodMs: number;
  readonly timeoutMs: number;
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
  /** local mode: the Service CIDRs (at most one per family), canonical text. */
  readonly serviceCidrs: readonly string[];
  readonly capturePort: number;
  readonly interface: string | undefined;
  /** mesh mode: NodePorts are captured on local addresses within these CIDRs (canonical); empty: all but loopback. */
  readonly nodePortAddresses: readonly string[];
  /** mesh mode: pod CIDRs (canonical) whose connections get eTP Local's short circuit; empty: only the node's own. */
  readonly clusterCidrs: readonly string[];
  /** This node's name: --hostname-override, else NODE_NAME, else the hostname. */
  readonly nodeName: string;
}

/** The commands that take flags from this table. */
export type FlagCommand = "run" | "render" | "status" | "capture" | "cleanup";

interface Flag {
  readonly description: string;
  readonly default?: string;
  readonly alias?: string;
  /** Given without a value (`--take-over`); `=true`/`=false` and the variable take those words. */
  readonly boolean?: true;
  /** The commands that take it. @default run and render */
  readonly commands?: readonly FlagCommand[];
}

/** The flags, by long name. Order is the order of --help. */
export const FLAGS = {
  kubeconfig: { description: "Path to a kubeconfig; default: in-cluster, then $KUBECONFIG or ~/.kube/config" },
  namespace: { description: "Watch only this namespace (default: all)" },
  "proxy-mode": {
    description: "onlyfetch, local (ClusterIPs captured on this node) or mesh (local plus externalIPs, load balancer IPs and NodePorts)",
    default: "onlyfetch",
    // capture installs mesh's NodePort rules only when told the mode.
    commands: ["run", "render", "capture", "status"],
  },
  expose: {
    description: "onlyfetch: serve the Services labelled kube-haproxy.io/expose=true (labelled), or every Service (all)",
    default: "labelled",
  },
  socket: { description: "HAProxy runtime API: a Unix socket path or host:port", default: "/var/run/haproxy/runtime.sock", alias: "backend-addr", commands: ["run", "render", "status"] },
  "master-socket": { description: "HAProxy master CLI socket (reloads for structural changes)", default: "/var/run/haproxy/master.sock", commands: ["run"] },
  config: { description: "The haproxy.cfg that `render` writes and reloads use (status, local mode: claims.json beside it)", default: "/var/run/haproxy/haproxy.cfg", commands: ["run", "render", "status"] },
  "take-over": {
    description: "Rewrite a --config made for another runtime socket or stats address, or not by kube-haproxy (refused without it)",
    default: "false",
    boolean: true,
    commands: ["run"],
  },
  slots: { description: "Least number of server slots per Service port", default: "8" },
  // Measured (README, Sizing): HAProxy 2.6 keeps ~0.9 KB per server slot per thread.
  nbthread: { description: "HAProxy worker threads, 1-64 (at most the CPUs this node gives), or auto (HAProxy's default: one per core); each thread costs memory per slot", default: "4" },
  algorithm: { description: "Default balance algorithm", default: "roundrobin" },
  "health-check": {
    description: "Active health checks of every Service port's endpoints: false, true (every 500ms) or an interval (100ms-60s); the annotation kube-haproxy.io/health-check overrides it",
    default: "false",
  },
  "connect-retries": { description: "Retries of a connection that fails to connect, each on another endpoint (0: fail at once, as kube-proxy)", default: "3" },
  "min-sync-period": { description: "Least time between two syncs to HAProxy (0s: at once)", default: "0s", commands: ["run"] },
  "config-sync-period": { description: "How often to re-read HAProxy's state and repair drift (at least 1s)", default: "1m", commands: ["run"] },
  "min-reload-period": { description: "Least time between two reloads for structural changes", default: "2s", commands: ["run"] },
  timeout: { description: "How long render waits for the API server's lists before it gives up (exit 1)", default: "60s", commands: ["render"] },
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
  "watch-stall-timeout": { description: "Restart a watch that saw nothing (not even a reconnect) for this long", default: "5m", commands: ["run"] },
  // render takes these two as well: their ports are reserved from Service frontends.
  "metrics-bind-address": { description: "Prometheus metrics (host:port, empty: off)", default: "127.0.0.1:10266" },
  "healthz-bind-address": { description: "/healthz and /livez (host:port, empty: off)", default: "0.0.0.0:10267" },
  "haproxy-binary": { description: "haproxy executable used to check a configuration before a reload", default: "haproxy", commands: ["run"] },
  "service-cidr": {
    description: "local: the cluster's Service CIDRs, comma-separated, at most one IPv4 and one IPv6 (their TCP is captured)",
    commands: ["run", "render", "capture"],
  },
  "capture-port": {
    description: "local: the first pool listener port; the pool's listeners take the ports after it",
    default: "10400",
    commands: ["run", "render", "capture"],
  },
  interface: {
    description: "local: DNAT captured connections to this interface's addresses instead of REDIRECT (unnumbered pod veths)",
    commands: ["run", "capture"],
  },
  "nodeport-addresses": {
    description: "mesh: NodePorts on the node's addresses within these CIDRs, comma-separated (default: every local address but loopback)",
    commands: ["run", "capture"],
  },
  "cluster-cidr": {
    description: "mesh: the cluster's pod CIDRs, comma-separated: connections from them get externalTrafficPolicy Local's short circuit, as the node's own (kube-proxy's --detect-local-mode ClusterCIDR; default: none)",
    commands: ["run", "capture"],
  },
  "hostname-override": {
    description: "local: this node's name, for internalTrafficPolicy Local (default: $NODE_NAME, then the hostname)",
    commands: ["run", "render"],
  },
  "log-level": { description: "error, warn, info or debug", default: "info", commands: ["run", "render", "capture", "cleanup"] },
  "log-format": { description: "text or json", default: "text", commands: ["run", "render", "capture", "cleanup"] },
} as const satisfies Record<string, Flag>;

export type FlagName = keyof typeof FLAGS;
export type RawFlags = Partial<Record<FlagName, string | undefined>>;

export function envName(flag: string): string {
  return `KUBE_HAPROXY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/** The flags a command takes, in --help order. */
export function flagsOf(command: FlagCommand): FlagName[] {
  return (Object.keys(FLAGS) as FlagName[]).filter((name) => ((FLAGS[name] as Flag).commands ?? ["run", "render"]).includes(command));
}

/**
 * Where a value came from, as the user wrote it: `--slots`, or `KUBE_HAPROXY_SLOTS` when the
 * command line did not set it and the environment did. Error messages start with it.
 */
export function optionLabel(flag: FlagName, flags: RawFlags, env: NodeJS.ProcessEnv): string {
  return flags[flag] === undefined && env[envName(flag)] !== undefined ? envName(flag) : `--${flag}`;
}

/** A bad value: one line that starts with the flag or variable it came from. */
export function badOption(label: string, message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_BAD_OPTION", `${label}: ${message}`);
}

/** Go-style durations: 0, 500ms, 5s, 1m, 2h22m, 1.5s. Returns milliseconds. */
export function parseDuration(text: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  if (text === "0") return 0;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) throw new Error(`not a duration: ${JSON.stringify(text)} (e.g. 0s, 500ms, 5s, 1m, 2h22m)`);
  return parts.reduce((total, [, value, u]) => total + Number(value) * unit[u!]!, 0);
}

/**
 * Flags over environment over defaults, validated. With `command`, only the flags that command
 * takes are read (from the command line or the environment): render ignores a run-only
 * variable of the shared ConfigMap, status reads only the socket, the rest keep their defaults.
 */
export function resolveOptions(flags: RawFlags, env: NodeJS.ProcessEnv = {}, command?: FlagCommand): Options {
  const takes = new Set<FlagName>(command === undefined ? (Object.keys(FLAGS) as FlagName[]) : flagsOf(command));
  const get = (flag: FlagName): string | undefined => {
    if (takes.has(flag)) {
      const given = flags[flag] ?? env[envName(flag)];
      if (given !== undefined) return given;
    }
    return (FLAGS[flag] as Flag).default;
  };
  const bad = (flag: FlagName, message: string): KubeHaproxyError => badOption(optionLabel(flag, flags, env), message);
  const text = (flag: FlagName): string => get(flag) ?? "";
  const duration = (flag: FlagName, minMs = 0): number => {
    let ms: number;
    try {
      ms = parseDuration(text(flag));
    } catch (error) {
      throw bad(flag, (error as Error).message);
    }
    if (ms < minMs) throw bad(flag, `must be at least ${minMs / 1000}s, not ${JSON.stringify(text(flag))}`);
    return ms;
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
  const notEmpty = (flag: FlagName): string => {
    const value = text(flag);
    if (value === "") throw bad(flag, "must not be empty");
    return value;
  };
  // host:port with an IP address and a port HAProxy and Node can bind or reach.
  const tcpAddress = (flag: FlagName, value: string, host: string, port: number, minPort: number): void => {
    if (value.startsWith(":") || isIP(host) === 0 || port < minPort || port > 65535) {
      throw bad(flag, `must be host:port with an IP address and a port from ${minPort} to 65535, not ${JSON.stringify(value)}`);
    }
  };
  const listenPorts: number[] = [];
  const hostPort = (flag: FlagName): string => {
    const value = text(flag);
    if (value === "") return value;
    const parsed = parseSocketAddress(value);
    if (!("host" in parsed)) throw bad(flag, `must be host:port with an IP address, not ${JSON.stringify(value)}`);
    tcpAddress(flag, value, parsed.host, parsed.port, 0); // port 0: the kernel picks one (tests)
    listenPorts.push(parsed.port);
    return value;
  };
  // A runtime or master socket: host:port, or a path that can be written into haproxy.cfg as is.
  const socketFlag = (flag: FlagName): string => {
    const value = notEmpty(flag);
    const parsed = parseSocketAddress(value);
    if ("host" in parsed) tcpAddress(flag, value, parsed.host, parsed.port, 1);
    else if (!/^[A-Za-z0-9_./-]+$/.test(value)) throw bad(flag, `a socket path may hold only letters, digits and _ . / -, not ${JSON.stringify(value)}`);
    return value;
  };
  const credential = (flag: "user" | "passwd"): string | undefined => {
    const value = get(flag);
    if (value === undefined) return undefined;
    try {
      return checkCredential(flag, value);
    } catch (error) {
      // The rule lives with the renderer that writes the value; the label is ours.
      throw bad(flag, (error as Error).message.replace(`--${flag} `, ""));
    }
  };
  const boolean = (flag: FlagName): boolean => oneOf(flag, ["false", "true"] as const) === "true";

  const algorithm = text("algorithm");
  if (!ALGORITHMS.has(algorithm)) throw bad("algorithm", `unknown balance algorithm ${JSON.stringify(algorithm)} (one of ${[...ALGORITHMS].join(", ")})`);
  const bindAddress = text("bind-address");
  if (isIP(bindAddress) === 0) throw bad("bind-address", `must be an IP address, not ${JSON.stringify(bindAddress)}`);
  const contentType = text("kube-api-content-type");
  if (contentType !== "application/json") {
    throw bad("kube-api-content-type", `only application/json is supported (the JavaScript client has no protobuf), not ${JSON.stringify(contentType)}`);
  }
  const user = credential("user");
  const passwd = credential("passwd");
  if ((user === undefined) !== (passwd === undefined)) throw bad(user === undefined ? "user" : "passwd", "--user and --passwd go together");
  const healthCheck = parseHealthCheck(text("health-check"));
  if (healthCheck === undefined) throw bad("health-check", `must be false, true or an interval from 100ms to 60s in whole ms or s, not ${JSON.stringify(text("health-check"))}`);
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

  const serviceCidrs = text("service-cidr").split(",").map((cidr) => cidr.trim()).filter(Boolean);
  const families = new Set<string>();
  for (const cidr of serviceCidrs) {
    const family = parseCidr(cidr)?.family;
    if (!family) throw bad("service-cidr", `must be CIDRs like 10.96.0.0/12,fd00:10:96::/112, not ${JSON.stringify(cidr)}`);
    if (families.has(family)) throw bad("service-cidr", `at most one IPv${family.slice(3)} CIDR, not ${JSON.stringify(text("service-cidr"))}`);
    families.add(family);
  }
  const proxyMode = oneOf("proxy-mode", ["onlyfetch", "local", "mesh"] as const);
  if (proxyMode !== "onlyfetch" && command !== undefined && command !== "status" && serviceCidrs.length === 0) {
    throw bad("service-cidr", `${proxyMode} mode needs the cluster's Service CIDR (e.g. --service-cidr 10.96.0.0/12)`);
  }
  /** A mesh-only list of CIDRs, canonical. */
  const meshCidrs = (name: "nodeport-addresses" | "cluster-cidr"): string[] => {
    const cidrs = text(name).split(",").map((cidr) => cidr.trim()).filter(Boolean).map((cidr) => {
      const parsed = parseCidr(cidr);
      if (!parsed) throw bad(name, `must be CIDRs like 192.168.0.0/16,fd00::/64, not ${JSON.stringify(cidr)}`);
      return `${parsed.address}/${parsed.prefix}`;
    });
    if (cidrs.length > 0 && proxyMode !== "mesh") throw bad(name, "applies to mesh mode only (--proxy-mode mesh)");
    return cidrs;
  };
  const nodePortAddresses = meshCidrs("nodeport-addresses");
  const clusterCidrs = meshCidrs("cluster-cidr");
  if (command === "capture" && serviceCidrs.length === 0) throw bad("service-cidr", "capture needs the cluster's Service CIDR (e.g. --service-cidr 10.96.0.0/12)");
  const interfaceName = get("interface") || undefined;
  if (interfaceName !== undefined && !/^[A-Za-z0-9_.@-]{1,15}$/.test(interfaceName)) throw bad("interface", `not an interface name: ${JSON.stringify(interfaceName)}`);

  return {
    kubeconfig: get("kubeconfig") || undefined,
    namespace: get("namespace") || undefined,
    proxyMode,
    expose: oneOf("expose", ["labelled", "all"] as const),
    socket: socketFlag("socket"),
    masterSocket: socketFlag("master-socket"),
    config: notEmpty("config"),
    takeOver: boolean("take-over"),
    slots: integer("slots", 1, 10_000),
    nbthread: text("nbthread") === "auto" ? undefined : integer("nbthread", 1, MAX_NBTHREAD),
    algorithm,
    healthCheck: healthCheck === false ? undefined : healthCheck,
    connectRetries: integer("connect-retries", 0, MAX_CONNECT_RETRIES),
    minSyncPeriodMs: duration("min-sync-period"),
    // kube-proxy refuses 0 too: drift repair is not optional, and 0 would be a busy loop.
    configSyncPeriodMs: duration("config-sync-period", 1_000),
    minReloadPeriodMs: duration("min-reload-period"),
    timeoutMs: duration("timeout", 1_000),
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
    haproxyBinary: notEmpty("haproxy-binary"),
    logLevel: oneOf("log-level", ["error", "warn", "info", "debug"] as const),
    logFormat: oneOf("log-format", ["text", "json"] as const),
    serviceCidrs,
    capturePort: integer("capture-port", 1, 65535),
    interface: interfaceName,
    nodePortAddresses,
    clusterCidrs,
    nodeName: get("hostname-override") || env.NODE_NAME || hostname(),
  };
}

/** The options as safe to log: the password is never printed. */
export function redacted(options: Options): Record<string, unknown> {
  return { ...options, passwd: options.passwd === undefined ? undefined : "<redacted>" };
}
