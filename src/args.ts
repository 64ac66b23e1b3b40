// The command line read strictly, kube-proxy style: every word is a known flag, its value, or
// an error that names it (with the closest flag), never silently ignored. And --help text.
// Pure: argv and command specs in, values or text out; cli.ts does the I/O.

import { KubeHaproxyError } from "./errors.ts";

export interface FlagSpec {
  readonly name: string;
  readonly description: string;
  readonly default?: string;
  /** A second long name (`--backend-addr` for `--socket`). */
  readonly alias?: string;
  /** Given without a value; `--flag=true|false` also works. */
  readonly boolean?: boolean;
  /** The environment variable it can also come from. */
  readonly env?: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly description: string;
  readonly flags: readonly FlagSpec[];
}

/** `--help` anywhere, or the flags' values by long name (booleans as "true"/"false"). */
export type ParsedArgs = { readonly help: true } | { readonly help: false; readonly values: Readonly<Record<string, string>> };

const HELP = new Set(["--help", "-h"]);

function usageError(message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_USAGE", message);
}

/**
 * Reads `args` (after the command name) against the command's flags. `elsewhere` names the
 * commands that take a flag this one does not, so that the error can say so.
 */
export function parseArgs(command: CommandSpec, args: readonly string[], elsewhere: ReadonlyMap<string, readonly string[]> = new Map()): ParsedArgs {
  const end = args.indexOf("--");
  if ((end === -1 ? args : args.slice(0, end)).some((arg) => HELP.has(arg))) return { help: true };
  const byName = new Map<string, FlagSpec>();
  for (const flag of command.flags) {
    byName.set(flag.name, flag);
    if (flag.alias) byName.set(flag.alias, flag);
  }
  const values: Record<string, string> = {};
  const more = `see kube-haproxy ${command.name} --help`;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--" || !arg.startsWith("-") || arg === "-") {
      const stray = arg === "--" ? args[i + 1] : arg;
      if (stray === undefined) continue;
      throw usageError(`${command.name}: unexpected argument ${JSON.stringify(stray)} (${command.name} takes only flags; ${more})`);
    }
    const eq = arg.indexOf("=");
    const written = eq === -1 ? arg : arg.slice(0, eq);
    const name = written.replace(/^--?/, "");
    const flag = written.startsWith("--") ? byName.get(name) : undefined;
    if (!flag) {
      const owners = written.startsWith("--") ? elsewhere.get(name) : undefined;
      if (owners) throw usageError(`${command.name}: ${written} is a flag of ${owners.join(" and ")}, not ${command.name} (${more})`);
      const near = closest(name, [...byName.keys()]);
      const hint = near !== undefined ? `did you mean --${near}?` : more;
      throw usageError(`${command.name}: unknown flag ${written} (${hint})`);
    }
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (flag.boolean) {
      if (inline !== undefined && inline !== "true" && inline !== "false") {
        throw usageError(`${command.name}: ${written} takes no value, or =true or =false, not ${JSON.stringify(inline)}`);
      }
      values[flag.name] = inline ?? "true";
      continue;
    }
    const value = inline ?? args[i + 1];
    // `--kubeconfig --slots 4` forgot the path; a value that really starts with -- goes after =.
    if (value === undefined || (inline === undefined && value.startsWith("--"))) {
      throw usageError(`${command.name}: ${written} needs a value (${written}=<value>)`);
    }
    if (inline === undefined) i++;
    values[flag.name] = value;
  }
  return { help: false, values };
}

/** The candidate nearest to `word` (a typo or a cut-short name), if one is near enough. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = name.startsWith(word) && word.length >= 3 ? 1 : editDistance(word, name);
    if (distance <= Math.min(2, Math.floor(name.length / 3)) && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Levenshtein distance with transpositions of neighbours (`sltos` is one step from `slots`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, d[i - 2]![j - 2]! + 1);
      d[i]![j] = value;
    }
  }
  return d[a.length]![b.length]!;
}

/** Styling for --help: bold headings on a terminal, plain text otherwise. */
export interface Style {
  readonly color: boolean;
}

const heading = (text: string, style: Style): string => (style.color ? `\x1b[1m${text}\x1b[22m` : text);

function columns(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd());
}

export function commandUsage(program: string, command: CommandSpec, style: Style): string {
  const lines = [command.description, "", heading("USAGE", style), `  ${program} ${command.name}${command.flags.length ? " [flags]" : ""}`];
  if (command.flags.length > 0) {
    const rows = command.flags.map((flag): [string, string] => {
      const names = [`--${flag.name}`, ...(flag.alias ? [`--${flag.alias}`] : [])].join(", ");
      const extra = [
        flag.default !== undefined && !flag.boolean ? `(default: ${flag.default === "" ? '""' : flag.default})` : "",
        flag.env ? `[$${flag.env}]` : "",
      ].filter(Boolean);
      return [`${names}${flag.boolean ? "" : " <value>"}`, [flag.description, ...extra].join(" ")];
    });
    lines.push("", heading("FLAGS", style), ...columns(rows));
  }
  return `${lines.join("\n")}\n`;
}

export function mainUsage(program: string, about: string, commands: readonly CommandSpec[], style: Style): string {
  return [
    about,
    "",
    heading("USAGE", style),
    `  ${program} <command> [flags]      (no command: run)`,
    "",
    heading("COMMANDS", style),
    ...columns(commands.map((command) => [command.name, command.description])),
    "",
    `Flags follow the command: ${program} run --slots 32. ${program} <command> --help lists its flags.`,
    "",
  ].join("\n");
}
