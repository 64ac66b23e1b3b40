// `haproxy -c`: the real parser decides whether a rendered configuration is valid.

import { execFile } from "node:child_process";

export interface ConfigCheck {
  readonly ok: boolean;
  /** HAProxy's own words (alerts and warnings), trimmed. */
  readonly output: string;
}

/** Runs `haproxy -c -f <path>` asynchronously (never blocks the event loop). */
export function checkConfigFile(path: string, haproxyBinary = "haproxy"): Promise<ConfigCheck> {
  return new Promise((resolve) => {
    execFile(haproxyBinary, ["-c", "-f", path], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ ok: error === null, output: `${stdout}${stderr}`.trim() || (error ? error.message : "") });
    });
  });
}
