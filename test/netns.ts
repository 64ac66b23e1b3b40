// A network-namespace lab for tests that need the kernel: namespaces with unique names, veth
// pairs, addresses, routes, processes inside (`ip netns exec`), and a teardown that runs
// whatever failed. Addresses: 198.18.0.0/15 for IPv4 and fd00:198:18::/48 (ULA) for IPv6, only
// inside namespaces the lab created. Everything is spawned asynchronously.
//
// Off-root or without the tools, the tests skip and say why; under CI=true they run and fail
// with that reason instead, since a skip there would hide a missing capability.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import type { Outcome, Request } from "./netns-agent.ts";

const PREFIX = "kht-";
const AGENT = new URL("./netns-agent.ts", import.meta.url).pathname;

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why network-namespace tests cannot run here, or undefined. */
export function netnsUnavailable(tools: readonly string[] = ["ip", "nft"]): string | undefined {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const missing = tools.filter((tool) => !onPath(tool));
  return missing.length > 0 ? `missing on PATH: ${missing.join(", ")} (apt-get install iproute2 nftables iptables)` : undefined;
}

/** `describe`/`test` options: skip with the reason, except under CI=true where createLab fails with it. */
export function netnsTestOptions(tools?: readonly string[]): { skip?: string; timeout: number } {
  const reason = netnsUnavailable(tools);
  // A stuck namespace test must fail, not hang the suite; the slowest takes ~20 s on a loaded machine.
  const timeout = 180_000;
  return reason === undefined || process.env.CI === "true" ? { timeout } : { skip: reason, timeout };
}

/** Runs argv; resolves with stdout, rejects with the command and its stderr. */
export function run(argv: readonly string[], input = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    const child = spawn(file!, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${argv.join(" ")}: exit ${code}: ${stderr.trim()}`))));
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

export interface Agent {
  call(request: Request): Promise<unknown>;
  serveHttp(host: string, port: number, body: string): Promise<void>;
  serveUdp(host: string, port: number, body: string): Promise<void>;
  http(host: string, port: number, timeoutMs?: number): Promise<Outcome>;
  udp(host: string, port: number, message: string, timeoutMs?: number): Promise<Outcome>;
}

export interface Namespace {
  readonly name: string;
  /** argv that runs `argv` inside this namespace. */
  wrap(argv: readonly string[]): string[];
  exec(argv: readonly string[], input?: string): Promise<string>;
  /** A process inside this namespace answering the agent's requests; stopped by the teardown. */
  agent(): Promise<Agent>;
}

export interface LinkEnd {
  readonly ns: Namespace;
  readonly ifname: string;
  /** With prefix length; IPv6 ones skip duplicate address detection. */
  readonly addresses: readonly string[];
}

export interface Lab {
  namespace(role: string): Promise<Namespace>;
  /** A veth pair between two namespaces, addressed and up. */
  link(a: LinkEnd, b: LinkEnd): Promise<void>;
  /** An executable that runs `binary` inside `ns` with the same pid (`ip netns exec` execs). */
  wrapper(ns: Namespace, binary: string, dir: string): Promise<string>;
}

let labs = 0;

/**
 * A fresh lab whose teardown is registered on `t` before anything exists: agents are killed,
 * then every namespace is deleted (with its veths, addresses and rules), whatever failed.
 * Namespaces left by a killed earlier run (their pid gone) are swept first.
 */
/** A namespace name unique to this process and swept by sweepStale once the process is gone. */
export function uniqueNamespaceName(role: string): string {
  return `${PREFIX}${process.pid}-${++labs}-${role}`;
}

export async function createLab(t: { after(fn: () => Promise<void>): void }, tools?: readonly string[]): Promise<Lab> {
  const reason = netnsUnavailable(tools);
  if (reason !== undefined) throw new Error(`network-namespace test cannot run: ${reason}${process.env.CI === "true" ? " (CI=true: a skip would be a failure)" : ""}`);
  const id = `${PREFIX}${process.pid}-${++labs}`;
  const names: string[] = [];
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    const failures: string[] = [];
    for (const name of names.reverse()) await run(["ip", "netns", "del", name]).catch((error: Error) => failures.push(error.message));
    if (failures.length > 0) throw new Error(`lab teardown: ${failures.join("; ")}`);
  });
  await sweepStale();

  const namespaceOf = (name: string): Namespace => {
    const wrap = (argv: readonly string[]): string[] => ["ip", "netns", "exec", name, ...argv];
    return {
      name,
      wrap,
      exec: (argv, input) => run(wrap(argv), input),
      agent: async () => {
        const child = spawn("ip", ["netns", "exec", name, process.execPath, AGENT], { stdio: ["pipe", "pipe", "inherit"] });
        children.push(child);
        return agentOver(child);
      },
    };
  };

  return {
    async namespace(role) {
      const name = `${id}-${role}`;
      names.push(name); // before creating it: a half-made namespace is deleted too
      await run(["ip", "netns", "add", name]);
      await run(["ip", "-n", name, "link", "set", "lo", "up"]);
      return namespaceOf(name);
    },
    async link(a, b) {
      await run(["ip", "link", "add", a.ifname, "netns", a.ns.name, "type", "veth", "peer", "name", b.ifname, "netns", b.ns.name]);
      for (const end of [a, b]) {
        for (const address of end.addresses) {
          await run(["ip", "-n", end.ns.name, "addr", "add", address, "dev", end.ifname, ...(address.includes(":") ? ["nodad"] : [])]);
        }
        await run(["ip", "-n", end.ns.name, "link", "set", end.ifname, "up"]);
      }
    },
    async wrapper(ns, binary, dir) {
      const path = join(dir, `in-${ns.name}`);
      const quoted = `'${binary.replaceAll("'", `'\\''`)}'`;
      await writeFile(path, `#!/bin/sh\nexec ip netns exec '${ns.name}' ${quoted} "$@"\n`, { mode: 0o755 });
      return path;
    },
  };
}

/** Deletes namespaces of labs whose process is gone (a run killed before its teardown). */
export async function sweepStale(): Promise<void> {
  const listed = await run(["ip", "netns", "list"]);
  for (const line of listed.split("\n")) {
    const match = new RegExp(`^(${PREFIX}(\\d+)-\\d+-\\S+)`).exec(line);
    if (!match || isAlive(Number(match[2]))) continue;
    const pids = await run(["ip", "netns", "pids", match[1]!]).catch(() => "");
    for (const pid of pids.split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
    await run(["ip", "netns", "del", match[1]!]).catch(() => {}); // another sweeper may have won
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function agentOver(child: ChildProcess): Agent {
  const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let next = 0;
  let exited: Error | undefined;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const reply = JSON.parse(line) as { id: number; ok: boolean; value?: unknown; error?: string };
    const entry = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (reply.ok) entry?.resolve(reply.value);
    else entry?.reject(new Error(reply.error));
  });
  child.on("exit", (code, signal) => {
    exited = new Error(`netns agent exited (${signal ?? code})`);
    for (const entry of waiting.values()) entry.reject(exited);
    waiting.clear();
  });
  const call = (request: Request): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (exited) return reject(exited);
      const id = ++next;
      waiting.set(id, { resolve, reject });
      child.stdin!.write(JSON.stringify({ id, ...request }) + "\n");
    });
  return {
    call,
    serveHttp: async (host, port, body) => void (await call({ op: "serve-http", host, port, body })),
    serveUdp: async (host, port, body) => void (await call({ op: "serve-udp", host, port, body })),
    http: (host, port, timeoutMs = 3_000) => call({ op: "http", host, port, timeoutMs }) as Promise<Outcome>,
    udp: (host, port, message, timeoutMs = 3_000) => call({ op: "udp", host, port, message, timeoutMs }) as Promise<Outcome>,
  };
}

/** `count` requests from `agent`, one connection each: the bodies answered; fails on the first non-response. */
export async function bodies(agent: Agent, ip: string, port: number, count = 8): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const outcome = await agent.http(ip, port);
    assert.equal(outcome.kind, "response", `${ip} port ${port}: ${JSON.stringify(outcome)}`);
    seen.add((outcome as Extract<Outcome, { kind: "response" }>).body);
  }
  return seen;
}
