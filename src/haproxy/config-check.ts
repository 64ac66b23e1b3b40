// `haproxy -c`: the real parser decides whether a rendered configuration is valid.

import { execFile } from "node:child_process";

export interface ConfigCheck {
  readonly ok: boolean;
  /** False when the binary could not run at all (not installed, not executable): nothing was checked. */
  readonly ran: boolean;
  /** HAProxy's own words (alerts and warnings), trimmed; or why it could not run. */
  readonly output: string;
}

/** Runs `haproxy -c -f <path>` asynchronously (never blocks the event loop). */
export function checkConfigFile(path: string, haproxyBinary = "haproxy"): Promise<ConfigCheck> {
  return new Promise((resolve) => {
    execFile(haproxyBinary, ["-c", "-f", path], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      // A spawn failure carries a string code (ENOENT, EACCES); an exit status a number.
      const ran = error === null || typeof error.code === "number";
      resolve({ ok: error === null, ran, output: `${stdout}${stderr}`.trim() || (error ? error.message : "") });
    });
  });
}
