// `npm run demo` killed with SIGTERM (npm → sh → node): npm goes, and the demo must not go on
// running without it. It stops, its HAProxy and pods stop, and its temporary folder is removed.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "./helpers.ts";

const ROOT = join(import.meta.dirname, "..");

async function processes(): Promise<{ pid: number; ppid: number; cmdline: string }[]> {
  const out: { pid: number; ppid: number; cmdline: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${entry}/stat`, "utf8"), readFile(`/proc/${entry}/cmdline`, "utf8")]).catch(() => ["", ""]);
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    out.push({ pid: Number(entry), ppid, cmdline: cmdline.replaceAll("\0", " ") });
  }
  return out;
}

async function descendants(root: number): Promise<number[]> {
  const all = await processes();
  const found: number[] = [];
  const walk = (pid: number): void => {
    for (const child of all.filter((p) => p.ppid === pid)) {
      found.push(child.pid);
      walk(child.pid);
    }
  };
  walk(root);
  return found;
}

/** Running: present in /proc and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

test("SIGTERM to `npm run demo` stops the demo, its HAProxy and its pods, and removes its folder", { timeout: 90_000 }, async (t) => {
  // Its own process group, so that whatever is left can be killed at the end whatever fails.
  const npm = spawn("npm", ["run", "demo"], { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  npm.stdout!.on("data", (chunk) => (output += chunk));
  npm.stderr!.on("data", (chunk) => (output += chunk));
  const started: number[] = [];
  let dir = "";
  t.after(async () => {
    for (const pid of [npm.pid!, ...started]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    try {
      process.kill(-npm.pid!, "SIGKILL");
    } catch {}
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  dir = (await waitFor(() => /files in (\S+);/.exec(output), 60_000, `the demo's header (output: ${output})`))[1]!;
  // Everything the demo started: npm's descendants, and HAProxy (which runs from the folder).
  const mentioning = async (): Promise<number[]> => (await processes()).filter((p) => p.cmdline.includes(dir)).map((p) => p.pid);
  started.push(...(await descendants(npm.pid!)), ...(await mentioning()));
  const demo = (await processes()).find((p) => started.includes(p.pid) && / src\/main\.js demo$/.test(p.cmdline.trim()));
  assert.ok(demo, `the demo's node process among ${started.join(", ")}`);
  assert.ok((await mentioning()).length >= 1, "HAProxy runs from the demo's folder");

  process.kill(npm.pid!, "SIGTERM"); // npm only, not its group
  await waitFor(() => started.every((pid) => !alive(pid)), 30_000, "every process the demo started to end");
  await waitFor(() => !existsSync(dir), 5_000, `${dir} removed`);
  assert.deepEqual(await mentioning(), []);
});
