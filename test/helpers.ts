// Small builders and waits shared by the tests.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, Endpoint } from "../src/model.ts";

export function makeBackend(name: string, endpoints: readonly Endpoint[] = [], patch: Partial<Backend> = {}): Backend {
  return {
    name,
    servicePort: name,
    mode: "tcp",
    algorithm: "roundrobin",
    binds: [],
    minSlots: 4,
    endpoints,
    ...patch,
  };
}

export function ready(ip: string, port: number): Endpoint {
  return { ip, port, state: "ready" };
}

export function draining(ip: string, port: number): Endpoint {
  return { ip, port, state: "drain" };
}

export async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix = "kh-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // Retried: a process that a later cleanup stops (HAProxy re-creating its master socket) can add
  // a file while rm runs, and a failing hook here would leave that process running.
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

/**
 * Registers cleanups to run last-registered first when the test ends, whatever fails: call it
 * right after each thing starts. (node:test runs `t.after` hooks in the order they were added.)
 */
export function deferrer(t: { after(fn: () => Promise<void>): void }): (cleanup: () => unknown) => void {
  const stack: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of stack.reverse()) await cleanup();
  });
  return (cleanup) => void stack.push(cleanup);
}

/** Polls `check` until it returns a truthy value (returned) or throws the last failure after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 5_000, what = "condition"): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await sleep(20);
  }
}

/** Issue 13: hostile stats credentials (11 kinds), refused at the door by run as by render. */
export const HOSTILE_CREDENTIALS: readonly (readonly [kind: string, value: string])[] = [
  ["space", "a b"], ["tab", "a\tb"], ["newline", "a\nb"], ["carriage return", "a\rb"], ["double quote", 'a"b'], ["single quote", "a'b"],
  ["hash", "a#b"], ["backslash", "a\\b"], ["empty", ""], ["non-ASCII", "pässword"], ["control character", "a\u0001b"],
];

export const CLI = join(import.meta.dirname, "..", "src", "cli.ts");

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI in a process of its own, asynchronously (a fake API server in this process must
 * not be blocked), killed after `timeoutMs` so that a CLI that never ends fails the test instead
 * of hanging the suite.
 */
export async function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; node?: string; entry?: string; nodeArgs?: readonly string[] } = {}): Promise<CliRun> {
  const child = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? []), options.entry ?? CLI, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}
