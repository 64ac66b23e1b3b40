// The command line: `kube-haproxy [run]`, `render`, `status`, `capture`, `cleanup`, `demo`, `version`. The flags are
// defined once in options.ts and read strictly (args.ts). Each command's module is imported
// only when that command runs: `--version` and `--help` load almost nothing, and run, render
// and status never load the demo or the simulated cluster (test/cli.test.ts holds it).
// Exit codes: 0 done, 2 a usage or configuration error (one line), 1 anything else (one line;
// `--log-level debug` adds the stack).

import { readFileSync } from "node:fs";
import { closest, commandUsage, mainUsage, parseArgs, type CommandSpec, type FlagSpec } from "./args.ts";
import { KubeHaproxyError, isKubeHaproxyError } from "./errors.ts";
import { FLAGS, envName, flagsOf, type FlagCommand, type FlagName } from "./options.ts";
import type { CommandInput, Setup } from "./commands/setup.ts";

interface Command extends CommandSpec {
  readonly run: (input: CommandInput) => Promise<void>;
}

function flagSpec(name: FlagName): FlagSpec {
  const flag: { description: string; default?: string; alias?: string; boolean?: true } = FLAGS[name];
  return { name, description: flag.description, default: flag.default, alias: flag.alias, boolean: flag.boolean, env: envName(name) };
}

const PROGRAM = "kube-haproxy";
const ABOUT = "A kube-proxy replacement with HAProxy as the data plane, never reloaded for endpoint changes";

function version(): string {
  return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

type SidecarBody = (ready: Setup, env: NodeJS.ProcessEnv) => Promise<void>;

/** run and render: options and paths are checked before the command's module loads (a bad flag costs no time). */
function withSetup(name: FlagCommand, description: string, load: () => Promise<SidecarBody>): Command {
  return {
    name,
    description,
    flags: flagsOf(name).map(flagSpec),
    run: async (input) => {
      const ready = (await import("./commands/setup.ts")).setup(input, name);
      await (await load())(ready, input.env);
    },
  };
}

const COMMANDS: readonly Command[] = [
  withSetup("run", "Run the sidecar: follow the cluster and keep HAProxy in sync at runtime (the default command)", async () => (await import("./commands/run.ts")).run),
  withSetup("render", "Write the bootstrap haproxy.cfg for the cluster's current state to --config, then exit", async () => (await import("./commands/render.ts")).render),
  {
    name: "status",
    description: "Print HAProxy's slots per Service port from the runtime socket; exit 1 if unreachable",
    flags: [...flagsOf("status").map(flagSpec), { name: "json", description: "JSON for scripts", boolean: true }],
    run: async (input) => (await import("./commands/status.ts")).status(input),
  },
  {
    name: "capture",
    description: "local: install the kernel rules that send ClusterIP TCP to HAProxy (idempotent), then exit",
    flags: flagsOf("capture").map(flagSpec),
    run: async (input) => (await import("./commands/capture.ts")).capture(input),
  },
  {
    name: "cleanup",
    description: "Remove everything kube-haproxy put in the kernel (the capture table), then exit",
    flags: flagsOf("cleanup").map(flagSpec),
    run: async (input) => (await import("./commands/capture.ts")).cleanup(input),
  },
  {
    name: "demo",
    description: "A simulated cluster, a real HAProxy and the real sync path, shown live; Ctrl-C stops it",
    flags: [],
    run: async (input) => {
      // The image leaves the simulated cluster out (.dockerignore): say so rather than a stack.
      const loaded = await import("./commands/demo.ts").catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ERR_MODULE_NOT_FOUND") throw error;
        throw new KubeHaproxyError("E_USAGE", "demo: the simulated cluster is not part of this installation (the image leaves it out); run the demo from a checkout: npm run demo");
      });
      await loaded.demo(input);
    },
  },
  {
    name: "version",
    description: "Print the version",
    flags: [],
    run: async () => void process.stdout.write(`${PROGRAM} ${version()}\n`),
  },
];

/** Flags of the other commands that this one does not take, with the commands that do. */
function flagOwners(command: Command): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const other of COMMANDS) {
    if (other === command) continue;
    for (const flag of other.flags) {
      if (command.flags.some((own) => own.name === flag.name)) continue;
      for (const name of [flag.name, ...(flag.alias ? [flag.alias] : [])]) owners.set(name, [...(owners.get(name) ?? []), other.name]);
    }
  }
  return owners;
}

function usageError(message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_USAGE", message);
}

/** Set once the flags are read: an unexpected error then shows its stack. */
let debug = false;

/** Runs the command line; resolves with the exit code. */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const style = { color: process.stdout.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb" };
  const [first = "run", ...rest] = argv;
  if (first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(mainUsage(PROGRAM, `${PROGRAM} ${version()}: ${ABOUT}`, COMMANDS, style));
    return 0;
  }
  if (first === "--version") return main(["version", ...rest], env);
  if (first.startsWith("-")) {
    const named = argv.find((arg) => COMMANDS.some((c) => c.name === arg));
    const fixed = named ? [named, ...argv.filter((arg) => arg !== named)] : ["run", ...argv];
    throw usageError(`flags follow the command: ${PROGRAM} ${fixed.join(" ")}${named ? "" : " (or render, status)"}; see ${PROGRAM} --help`);
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    const near = closest(first, COMMANDS.map((c) => c.name));
    throw usageError(`unknown command ${JSON.stringify(first)} (${near ? `did you mean ${near}? ` : ""}commands: ${COMMANDS.map((c) => c.name).join(", ")})`);
  }
  const parsed = parseArgs(command, rest, flagOwners(command));
  if (parsed.help) {
    process.stdout.write(commandUsage(PROGRAM, command, style));
    return 0;
  }
  debug = (parsed.values["log-level"] ?? env[envName("log-level")]) === "debug";
  await command.run({ values: parsed.values, env });
  return 0;
}

/** One line on stderr; the exit code. A stack only for the unexpected, and only with debug logs. */
function report(error: unknown): number {
  const oneLine = (text: string): string => text.trim().replace(/\s*\n\s*/g, " | ");
  if (isKubeHaproxyError(error)) {
    process.stderr.write(`${PROGRAM}: ${oneLine(error.message)}\n`);
    return error.code === "E_BAD_OPTION" || error.code === "E_USAGE" ? 2 : 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (debug && error instanceof Error && error.stack) process.stderr.write(`${PROGRAM}: unexpected error: ${error.stack}\n`);
  else process.stderr.write(`${PROGRAM}: unexpected error: ${oneLine(message)} (--log-level debug shows the stack)\n`);
  return 1;
}

const fail = (error: unknown): never => process.exit(report(error));
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
main(process.argv.slice(2), process.env).then((code) => process.exit(code), fail);
