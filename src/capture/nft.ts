// The shell around the pure capture code: runs `nft` (spawned, never synchronously: the sidecar's
// event loop keeps serving while the kernel is updated) and nothing else touches the kernel.
// Needs CAP_NET_ADMIN in the network namespace of the node (hostNetwork).

import { spawn } from "node:child_process";
import { KubeHaproxyError } from "../errors.ts";
import { diffEntries, isEmpty, type CaptureChanges } from "./changes.ts";
import { parseCaptureState } from "./nft-json.ts";
import type { NoEndpointEntry } from "./no-endpoints.ts";
import { TABLE, renderChanges, renderCleanup, renderRuleset } from "./ruleset.ts";
import { checkConfig, checkEntry, checkKey, type CaptureConfig, type CaptureEntry } from "./spec.ts";

/** What kube-haproxy's table holds: the captured Service ports, and those without endpoints. */
export interface CaptureState {
  readonly entries: CaptureEntry[];
  readonly noEndpoints: NoEndpointEntry[];
}

export interface NftOptions {
  /** How to run nft, as argv; tests run it inside a network namespace. @default ["nft"] */
  readonly command?: readonly string[];
  /** A run of nft that takes longer is killed and fails. @default 30000 */
  readonly timeoutMs?: number;
}

/** Runs nft with `args`, `input` on its stdin; resolves with its stdout. */
async function runNft(args: readonly string[], input: string, options: NftOptions): Promise<string> {
  const [file = "nft", ...prefix] = options.command ?? ["nft"];
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...prefix, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const fail = (message: string, cause?: unknown): void => {
      clearTimeout(timer);
      reject(new KubeHaproxyError("E_CAPTURE_FAILED", message, { command: [file, ...prefix, ...args].join(" "), cause }));
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(`nft did not finish within ${timeoutMs} ms`);
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error: NodeJS.ErrnoException) =>
      fail(error.code === "ENOENT" ? `${file} not found (the nftables package provides nft)` : `cannot run ${file}: ${error.message}`, error),
    );
    child.on("close", (code, signal) => {
      if (code === 0) {
        clearTimeout(timer);
        resolve(stdout);
        return;
      }
      const hint = /Operation not permitted/.test(stderr) ? " (changing nftables needs CAP_NET_ADMIN)" : "";
      fail(`nft ${args.join(" ")} failed (${signal ?? `exit ${code}`})${hint}: ${stderr.trim()}`);
    });
    // nft may exit before reading all of its input (e.g. a bad option): its EPIPE is not ours.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

/** The entries in the kernel now, or undefined when kube-haproxy's table is not there. */
export async function readCapture(options: NftOptions = {}): Promise<CaptureEntry[] | undefined> {
  return (await readCaptureState(options))?.entries;
}

/** The capture's entries and the no-endpoint ones, or undefined when kube-haproxy's table is not there. */
export async function readCaptureState(options: NftOptions = {}): Promise<CaptureState | undefined> {
  try {
    return parseCaptureState(await runNft(["-j", "list", "table", ...TABLE.split(" ")], "", options));
  } catch (error) {
    if (error instanceof KubeHaproxyError && /No such file or directory/.test(error.message)) return undefined;
    throw error;
  }
}

/**
 * Creates or replaces the table in one transaction (`capture`): running it twice leaves one
 * set of rules. Entries already in the kernel that still fit the configuration are kept, so
 * running it beside a live sidecar does not drop captured Services; the others are dropped
 * (counted). The sidecar's next sync repairs whatever changed between the read and the write.
 */
export async function installCapture(config: CaptureConfig, options: NftOptions = {}): Promise<{ kept: number; dropped: number }> {
  const checked = checkConfig(config);
  const current = (await readCaptureState(options)) ?? { entries: [], noEndpoints: [] };
  const fits = (check: () => unknown): boolean => {
    try {
      check();
      return true;
    } catch {
      return false; // outside today's CIDRs or listener ports: counted in `dropped`
    }
  };
  const kept = current.entries.filter((entry) => fits(() => checkEntry(checked, entry)));
  const noEndpoints = current.noEndpoints.filter((entry) => fits(() => checkKey(checked, entry)));
  await runNft(["-f", "-"], renderRuleset(config, kept, noEndpoints), options);
  return { kept: kept.length, dropped: current.entries.length - kept.length };
}

/** Applies element changes in one transaction; all or nothing. */
export async function updateCapture(config: CaptureConfig, changes: CaptureChanges, options: NftOptions = {}): Promise<void> {
  const text = renderChanges(config, changes);
  if (text !== "") await runNft(["-f", "-"], text, options);
}

/**
 * Makes the kernel hold exactly `desired`: reads what is there, applies the difference, and
 * installs the whole table when it is missing (after a `cleanup`, or a node reboot).
 */
export async function syncCapture(config: CaptureConfig, desired: readonly CaptureEntry[], options: NftOptions = {}): Promise<CaptureChanges> {
  const applied = await readCapture(options);
  if (applied === undefined) {
    const text = renderRuleset(config, desired);
    await runNft(["-f", "-"], text, options);
    return diffEntries(config, [], desired);
  }
  const changes = diffEntries(config, applied, desired);
  if (!isEmpty(changes)) await updateCapture(config, changes, options);
  return changes;
}

/** Removes everything kube-haproxy put in the kernel (`cleanup`); nothing there is fine. */
export async function cleanupCapture(options: NftOptions = {}): Promise<void> {
  await runNft(["-f", "-"], renderCleanup(), options);
}
