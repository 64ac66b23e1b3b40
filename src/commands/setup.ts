// What run and render share at their start: options read and validated, the paths they will
// use checked on disk (one line, exit 2, before anything starts), and the logger.

import { accessSync, constants, statSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { createLogger, type Logger } from "../log.ts";
import { badOption, optionLabel, redacted, resolveOptions, type FlagCommand, type FlagName, type Options, type RawFlags } from "../options.ts";

/** What cli.ts hands a command: the flags given on its command line, and the environment. */
export interface CommandInput {
  /** By long name; booleans as "true"/"false". */
  readonly values: Readonly<Record<string, string>>;
  readonly env: NodeJS.ProcessEnv;
}

export interface Setup {
  readonly options: Options;
  readonly log: Logger;
  /** How the user wrote a flag: `--socket`, or `KUBE_HAPROXY_SOCKET` when it came from there. */
  readonly label: (flag: FlagName) => string;
}

export function setup(input: CommandInput, command: FlagCommand): Setup {
  const flags = input.values as RawFlags;
  const options = resolveOptions(flags, input.env, command);
  const label = (flag: FlagName): string => optionLabel(flag, flags, input.env);
  checkConfigPath(options.config, label("config"));
  if (command === "run") checkExecutable(options.haproxyBinary, label("haproxy-binary"), input.env.PATH ?? "");
  const log = createLogger({ level: options.logLevel, format: options.logFormat });
  log.debug("options", redacted(options));
  return { options, log, label };
}

/** The configuration is written by temp file + rename: its folder must exist and be writable. */
export function checkConfigPath(path: string, label: string): void {
  const folder = dirname(resolve(path));
  const stat = statSync(folder, { throwIfNoEntry: false });
  if (!stat) throw badOption(label, `no such folder: ${folder}`);
  if (!stat.isDirectory()) throw badOption(label, `${folder} is not a folder`);
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw badOption(label, `${path} is a folder, not a file`);
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw badOption(label, `cannot write in ${folder} (permission denied)`);
  }
}

/** A path is checked as it is; a bare name is looked up on PATH, as execFile will. */
export function checkExecutable(binary: string, label: string, path: string): void {
  const candidates = binary.includes("/") ? [binary] : path.split(delimiter).filter(Boolean).map((folder) => join(folder, binary));
  const runnable = candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
  if (!runnable) throw badOption(label, binary.includes("/") ? `no executable file ${binary}` : `no executable ${JSON.stringify(binary)} on PATH`);
}
