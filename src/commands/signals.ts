// How a long-running command learns that it should stop: SIGTERM or SIGINT, or (for the demo)
// its parent going away, as when `npm run demo` is killed and would leave node and HAProxy behind.

import { readFileSync } from "node:fs";

export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve(signal));
  });
}

/**
 * Resolves when this process's parent has exited: its parent process id changes as the process
 * is handed to init (or a subreaper). Checked every `everyMs`; the timer does not keep the
 * process alive. process.ppid is read once at start, so the live value comes from /proc.
 */
export function untilOrphaned(everyMs = 500): Promise<void> {
  const parent = process.ppid;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (currentParent() === parent) return;
      clearInterval(timer);
      resolve();
    }, everyMs);
    timer.unref();
  });
}

function currentParent(): number | undefined {
  try {
    // "<pid> (<comm>) <state> <ppid> …"; comm may hold spaces and parentheses, so read after the last ")".
    const stat = readFileSync("/proc/self/stat", "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return process.ppid; // no /proc: cannot tell
  }
}
