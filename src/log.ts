// The one logger. Built at the edge (cli.ts) from --log-level/--log-format; everything else
// receives a Logger and never reads process.env or writes to stdout itself.

import { createConsola, type ConsolaInstance, type LogObject } from "consola";

export type Logger = Pick<ConsolaInstance, "error" | "warn" | "info" | "debug">;

export type LogLevel = "error" | "warn" | "info" | "debug" | "silent";
export type LogFormat = "text" | "json";

const LEVELS: Record<LogLevel, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

export function createLogger(options: { level?: LogLevel; format?: LogFormat; stream?: NodeJS.WritableStream } = {}): ConsolaInstance {
  const stream = options.stream ?? process.stderr;
  const logger = createConsola({ level: LEVELS[options.level ?? "info"] });
  if (options.format === "json") {
    logger.setReporters([{ log: (entry: LogObject) => stream.write(jsonLine(entry)) }]);
  } else if (options.stream) {
    logger.setReporters([{ log: (entry: LogObject) => stream.write(`${entry.type} ${entry.args.map(String).join(" ")}\n`) }]);
  }
  return logger;
}

function jsonLine(entry: LogObject): string {
  const [message, ...rest] = entry.args;
  const fields = rest.length === 1 && typeof rest[0] === "object" && rest[0] !== null ? rest[0] : rest.length ? { args: rest } : {};
  return JSON.stringify({ time: entry.date.toISOString(), level: entry.type, msg: String(message), ...fields }) + "\n";
}

/** A logger that drops everything: for tests and the bench. */
export const silentLogger: Logger = createLogger({ level: "silent" });
