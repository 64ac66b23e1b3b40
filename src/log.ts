// The one logger. Built at the edge (the commands) from --log-level/--log-format; everything
// else receives a Logger and never reads process.env or writes to stdout itself. One line per
// event in both formats: consola's own reporters box warnings in blank lines, so ours replace them.

// consola/core: the reporters are ours, so the main entry's (fancy, box, colours) are not loaded
// (~2 MB of the sidecar's RSS, measured).
import { createConsola, type ConsolaInstance, type LogObject } from "consola/core";

export type Logger = Pick<ConsolaInstance, "error" | "warn" | "info" | "debug">;

export type LogLevel = "error" | "warn" | "info" | "debug" | "silent";
export type LogFormat = "text" | "json";
export type LogType = "error" | "warn" | "info" | "debug";

const LEVELS: Record<LogLevel, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

export function createLogger(options: { level?: LogLevel; format?: LogFormat; stream?: NodeJS.WritableStream } = {}): ConsolaInstance {
  const stream = options.stream ?? process.stderr;
  const line = options.format === "json" ? jsonLine : textLine;
  return createConsola({ level: LEVELS[options.level ?? "info"], reporters: [{ log: (entry: LogObject) => stream.write(line(entry)) }] });
}

/** `2025-01-02T03:04:05.678Z WARN  message {"extra":"fields"}`: one line, newlines escaped. */
export function textLine(entry: LogObject): string {
  const [message, ...rest] = entry.args;
  const fields = rest.map((value) => (typeof value === "string" ? value : JSON.stringify(value))).join(" ");
  const text = `${String(message)}${fields ? ` ${fields}` : ""}`.replaceAll("\n", "\\n");
  return `${entry.date.toISOString()} ${entry.type.toUpperCase().padEnd(5)} ${text}\n`;
}

function jsonLine(entry: LogObject): string {
  const [message, ...rest] = entry.args;
  const fields = rest.length === 1 && typeof rest[0] === "object" && rest[0] !== null ? rest[0] : rest.length ? { args: rest } : {};
  return JSON.stringify({ time: entry.date.toISOString(), level: entry.type, msg: String(message), ...fields }) + "\n";
}

/**
 * A logger that offers every entry to `take` first: what it takes is not logged, the rest goes
 * to `base` unchanged. For the commands, which report some events their own way.
 */
export function interceptLogger(base: Logger, take: (type: LogType, message: string) => boolean): Logger {
  const types = new Set<string>(["error", "warn", "info", "debug"]);
  return createConsola({
    level: LEVELS.debug,
    reporters: [{
      log: (entry: LogObject) => {
        const type = (types.has(entry.type) ? entry.type : "info") as LogType;
        if (!take(type, String(entry.args[0]))) base[type](...(entry.args as [unknown, ...unknown[]]));
      },
    }],
  });
}

/** A logger that drops everything: for tests and the bench. */
export const silentLogger: Logger = createLogger({ level: "silent" });
