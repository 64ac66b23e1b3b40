// `kube-haproxy capture` and `kube-haproxy cleanup`: the kernel side of local mode, for an init
// container or an operator. capture installs the rules idempotently (one table, replaced in one
// transaction: twice is one set of rules) and keeps the map elements a running sidecar put there;
// cleanup removes everything kube-haproxy put in the kernel (kube-proxy's --cleanup).

import { cleanupCapture, installCapture, readCapture } from "../capture/index.ts";
import { captureConfig } from "../local-mode.ts";
import { createLogger } from "../log.ts";
import { resolveOptions, type RawFlags } from "../options.ts";
import type { CommandInput } from "./setup.ts";

export async function capture(input: CommandInput): Promise<void> {
  const options = resolveOptions(input.values as RawFlags, input.env, "capture");
  const log = createLogger({ level: options.logLevel, format: options.logFormat });
  // The guard covers --capture-port up to the highest listener the map already sends to: a
  // sidecar's pool may have grown past it, and its elements must stay.
  const last = Math.max(options.capturePort, ...((await readCapture()) ?? []).map((entry) => entry.listenPort));
  const { kept, dropped } = await installCapture(captureConfig(options, { first: options.capturePort, last }));
  log.info(`capture installed for ${options.serviceCidrs.join(", ")} to listener ports ${options.capturePort}-${last}: ${kept} elements kept, ${dropped} dropped`);
}

export async function cleanup(input: CommandInput): Promise<void> {
  const options = resolveOptions(input.values as RawFlags, input.env, "cleanup");
  await cleanupCapture();
  createLogger({ level: options.logLevel, format: options.logFormat }).info("capture removed: kube-haproxy has nothing left in the kernel");
}
