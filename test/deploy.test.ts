// The install (deploy/, Dockerfile, .dockerignore) checked against the code: every file is in
// the kustomization, every flag and KUBE_HAPROXY_* variable is one the CLI knows, all
// containers agree on the socket and config paths, RBAC grants exactly what the code reads,
// containers hold no privilege they do not need, one image pinning one HAProxy version runs all
// containers, HAProxy stops softly, and the image's entrypoint really starts with production
// dependencies only. No cluster and no Docker engine needed.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, posix, relative } from "node:path";
import { describe, test } from "node:test";
import type { V1ClusterRole, V1ClusterRoleBinding, V1ConfigMap, V1Container, V1DaemonSet, V1Probe } from "@kubernetes/client-node";
import { parse, parseAllDocuments } from "yaml";
import { FLAGS, envName, resolveOptions } from "../src/options.ts";
import { masterCommand } from "../src/haproxy/master.ts";
import { ROOT_ON_PURPOSE, renderConfig } from "../src/haproxy/render.ts";
import { haproxyBinary } from "../src/sim/haproxy.ts";
import { freePort } from "../src/sim/pods.ts";
import { deferrer, makeBackend, ready, tempDir, waitFor } from "./helpers.ts";

const ROOT = join(import.meta.dirname, "..");
/** The base; deploy/kustomization.yaml (onlyfetch), deploy/local/ and deploy/mesh/ are overlays over it. */
const DEPLOY = join(ROOT, "deploy", "base");
const KUSTOMIZATION = "kustomization.yaml";
/** The subcommands a manifest may run (src/cli.ts). */
const SUBCOMMANDS = new Set(["run", "render", "status"]);
const FLAG_ENV = new Map(Object.keys(FLAGS).map((name) => [envName(name), name]));

// ---------------------------------------------------------------------------------------------
// Loading

interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  [key: string]: unknown;
}

interface Kustomization {
  namespace?: string;
  resources?: string[];
  components?: string[];
  patches?: { path?: string }[];
  configMapGenerator?: { name: string; envs?: string[]; files?: string[]; literals?: string[] }[];
  secretGenerator?: { name: string; envs?: string[]; files?: string[] }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out;
}

/** kustomize's env-file format: KEY=value lines, whole-line # comments, blank lines. */
function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    assert.ok(eq > 0, `env line without KEY=: ${JSON.stringify(line)}`);
    out[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return out;
}

const kustomization = parse(await readFile(join(DEPLOY, KUSTOMIZATION), "utf8")) as Kustomization;
const deployFiles = (await listFiles(DEPLOY)).map((path) => relative(DEPLOY, path).split("\\").join("/")).sort();
const objects: K8sObject[] = [];
const yamlErrors: string[] = [];
for (const file of deployFiles.filter((f) => /\.ya?ml$/.test(f) && f !== KUSTOMIZATION)) {
  for (const doc of parseAllDocuments(await readFile(join(DEPLOY, file), "utf8"))) {
    for (const error of doc.errors) yamlErrors.push(`${file}: ${error.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
}

function only<T extends K8sObject>(kind: string): T {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind} in deploy/ (found ${found.length})`);
  return found[0] as T;
}

const daemonSet = only<V1DaemonSet & K8sObject>("DaemonSet");
const podSpec = daemonSet.spec!.template.spec!;
const initContainers = podSpec.initContainers ?? [];
const allContainers: V1Container[] = [...initContainers, ...podSpec.containers];

function container(name: string): V1Container {
  const found = allContainers.find((c) => c.name === name);
  assert.ok(found, `container ${name} in the DaemonSet`);
  return found;
}

/** `repo/name[:tag][@digest]` → `repo/name` (a registry's :port stays). */
function imageName(image: string): string {
  const noDigest = image.replace(/@.*$/, "");
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}


/** The flags ConfigMap every container reads with envFrom, from a generator or a resource. */
async function configMapData(name: string): Promise<Record<string, string>> {
  const generator = kustomization.configMapGenerator?.find((g) => g.name === name);
  if (generator) {
    const data: Record<string, string> = {};
    for (const file of generator.envs ?? []) Object.assign(data, parseEnvFile(await readFile(join(DEPLOY, file), "utf8")));
    for (const literal of generator.literals ?? []) {
      const eq = literal.indexOf("=");
      data[literal.slice(0, eq)] = literal.slice(eq + 1);
    }
    assert.deepEqual(generator.files ?? [], [], "flags come as KEY=value (envs or literals), not files");
    return data;
  }
  const resource = objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === name) as V1ConfigMap | undefined;
  assert.ok(resource, `ConfigMap ${name} (a configMapGenerator or a resource in deploy/)`);
  return { ...resource.data };
}

const flagsConfigMapNames = new Set(allContainers.flatMap((c) => (c.envFrom ?? []).map((e) => e.configMapRef?.name).filter((n) => n !== undefined)));
assert.equal(flagsConfigMapNames.size, 1, `one flags ConfigMap for all containers: ${[...flagsConfigMapNames].join(", ")}`);
const FLAGS_CONFIGMAP = [...flagsConfigMapNames][0]!;
const flags = await configMapData(FLAGS_CONFIGMAP);

function flag(name: keyof typeof FLAGS): string {
  const value = flags[envName(name)];
  assert.ok(value !== undefined, `${envName(name)} is set in the ConfigMap ${FLAGS_CONFIGMAP}`);
  return value;
}

/** The container's environment as Kubernetes builds it: envFrom ConfigMaps, then env. */
function environment(c: V1Container): Map<string, string> {
  const env = new Map<string, string>();
  for (const source of c.envFrom ?? []) {
    if (source.configMapRef?.name === FLAGS_CONFIGMAP) for (const [k, v] of Object.entries(flags)) env.set(`${source.prefix ?? ""}${k}`, v);
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env.set(e.name, e.value);
  return env;
}

/** Kubernetes' $(VAR) expansion in command/args ($$ escapes); an unknown variable stays as written. */
function expand(text: string, env: Map<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => (name === undefined ? "$" : (env.get(name) ?? whole)));
}

function commandLine(c: V1Container): string[] {
  const env = environment(c);
  return [...(c.command ?? []), ...(c.args ?? [])].map((arg) => expand(arg, env));
}

/**
 * The haproxy container runs `sh -c <script> <$0> <$1> <$2>`: the script's one `haproxy` line,
 * its "$1"/"$2" replaced by the positional arguments, is HAProxy's command line.
 */
function haproxyWrapper(): { script: string; positional: string[] } {
  const [shell, dashC, script, ...positional] = commandLine(container("haproxy"));
  assert.deepEqual([shell, dashC], ["/bin/sh", "-c"], "haproxy runs under a small POSIX shell");
  return { script: script!, positional };
}

function haproxyArgv(): string[] {
  const { script, positional } = haproxyWrapper();
  const lines = script.split("\n").filter((line) => /^\s*haproxy\s/.test(line));
  assert.equal(lines.length, 1, `one haproxy command line in:\n${script}`);
  const words = lines[0]!.replace(/\s*&.*$/, "").trim().split(/\s+/);
  return words.map((word) => word.replace(/^"(.*)"$/, "$1").replace(/\$(\d)/g, (_, n: string) => positional[Number(n)] ?? `$${n}`));
}

/** host:port (IPv6 in brackets) → parts. */
function hostPort(value: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(value);
  assert.ok(match, `host:port: ${JSON.stringify(value)}`);
  return { host: match[1]!, port: Number(match[2]) };
}

function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------

describe("deploy/: kustomization", () => {
  test("every YAML file parses, and every document is a named Kubernetes object", () => {
    assert.deepEqual(yamlErrors, []);
    for (const o of objects) {
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `apiVersion, kind and metadata.name: ${JSON.stringify(o).slice(0, 120)}`);
    }
  });

  test("lists every file in deploy/, and every file it lists exists", () => {
    const referenced = [
      ...(kustomization.resources ?? []),
      ...(kustomization.components ?? []),
      ...(kustomization.patches ?? []).flatMap((p) => (p.path ? [p.path] : [])),
      ...[...(kustomization.configMapGenerator ?? []), ...(kustomization.secretGenerator ?? [])].flatMap((g) => [
        ...(g.envs ?? []),
        ...(g.files ?? []).map((f) => f.replace(/^[^=]*=/, "")),
      ]),
    ].map((p) => posix.normalize(p));
    for (const path of referenced) {
      assert.ok(!/^[a-z]+:\/\//.test(path) && !path.startsWith("../"), `a local file inside deploy/: ${path}`);
      assert.ok(existsSync(join(DEPLOY, path)), `deploy/${path} exists`);
    }
    assert.deepEqual([...new Set(referenced)].sort(), deployFiles.filter((f) => f !== KUSTOMIZATION), "files in deploy/ vs. files the kustomization uses");
  });

  test("every namespaced object lives in the kustomization's namespace", () => {
    const namespace = only<K8sObject>("Namespace").metadata?.name;
    assert.equal(kustomization.namespace, namespace);
    for (const o of objects.filter((o) => !["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(o.kind ?? ""))) {
      assert.equal(o.metadata?.namespace, namespace, `${o.kind}/${o.metadata?.name}`);
    }
  });

  test("every container image is set in the kustomization's images, and every entry is used", () => {
    const used = new Set(allContainers.map((c) => imageName(c.image ?? "")));
    const listed = new Set((kustomization.images ?? []).map((i) => i.name));
    assert.deepEqual([...used].sort(), [...listed].sort());
    for (const image of kustomization.images ?? []) assert.ok(image.newTag ?? image.digest, `${image.name} has a tag or digest`);
  });

  test("kubectl kustomize builds it, and the generated ConfigMap is the one the pods read", { timeout: 60_000 }, async (t) => {
    const kubectl = (process.env.PATH ?? "").split(":").map((dir) => join(dir, "kubectl")).find((path) => existsSync(path));
    if (!kubectl) return t.skip("kubectl is not installed");
    const built = await run(kubectl, ["kustomize", DEPLOY], { timeoutMs: 50_000 });
    assert.equal(built.code, 0, built.stderr);
    const docs = parseAllDocuments(built.stdout).map((d) => d.toJS() as K8sObject);
    const ds = docs.find((o) => o.kind === "DaemonSet") as V1DaemonSet | undefined;
    assert.ok(ds);
    const spec = ds.spec!.template.spec!;
    const refs = new Set([...(spec.initContainers ?? []), ...spec.containers].flatMap((c) => (c.envFrom ?? []).map((e) => e.configMapRef?.name)));
    assert.equal(refs.size, 1);
    const ref = [...refs][0];
    const cm = docs.find((o) => o.kind === "ConfigMap" && o.metadata?.name === ref) as V1ConfigMap | undefined;
    assert.ok(cm, `the built output has the ConfigMap ${ref} that envFrom names`);
    assert.deepEqual(cm.data, flags);
  });
});

describe("deploy/: flags", () => {
  test("every ConfigMap key and KUBE_HAPROXY_* variable is a flag of src/options.ts", () => {
    for (const key of Object.keys(flags)) assert.ok(FLAG_ENV.has(key), `ConfigMap key ${key} is no flag's variable (${[...FLAG_ENV.keys()].join(", ")})`);
    for (const c of allContainers) {
      for (const e of c.env ?? []) {
        // The one variable that is no flag: HAProxy's configuration reads it (render.ts).
        if (c.name === "haproxy" && e.name === ROOT_ON_PURPOSE) continue;
        if (e.name.startsWith("KUBE_HAPROXY_")) assert.ok(FLAG_ENV.has(e.name), `${c.name}: env ${e.name} is no flag's variable`);
      }
      for (const arg of [...(c.command ?? []), ...(c.args ?? [])]) {
        for (const [, name] of arg.matchAll(/\$\((KUBE_HAPROXY_[A-Z0-9_]+)\)/g)) assert.ok(FLAG_ENV.has(name!), `${c.name}: $(${name}) is no flag's variable`);
      }
    }
  });

  test("the ConfigMap's values pass the CLI's own validation", () => {
    assert.doesNotThrow(() => resolveOptions({}, flags));
    assert.equal(resolveOptions({}, flags).proxyMode, "onlyfetch");
  });

  test("kube-haproxy containers run the image's entrypoint with a known subcommand and known --flags", () => {
    // Only the haproxy container replaces the ENTRYPOINT (node) with a command of its own.
    const kubeHaproxy = allContainers.filter((c) => c.command === undefined);
    assert.deepEqual(kubeHaproxy.map((c) => c.name).sort(), ["kube-haproxy", "render"]);
    for (const c of kubeHaproxy) {
      const args = c.args ?? [];
      for (const arg of args.filter((a) => a.startsWith("--"))) {
        const name = arg.slice(2).split("=")[0]!;
        assert.ok(name in FLAGS || name === "help", `${c.name}: --${name} is not a flag of src/options.ts`);
      }
      const subcommand = args.find((a) => !a.startsWith("-"));
      assert.ok(subcommand !== undefined && SUBCOMMANDS.has(subcommand), `${c.name}: subcommand ${subcommand} is one of ${[...SUBCOMMANDS].join(", ")}`);
      assert.equal(args[0], subcommand, `${c.name}: the subcommand comes first`);
      assert.ok((c.envFrom ?? []).some((e) => e.configMapRef?.name === FLAGS_CONFIGMAP), `${c.name} reads the flags ConfigMap`);
    }
    assert.deepEqual(initContainers.map((c) => [c.name, c.args]), [["render", ["render"]]]);
    assert.deepEqual(container("kube-haproxy").args, ["run"]);
  });
});

describe("deploy/: HAProxy and the sidecar share one socket directory", () => {
  const volume = (podSpec.volumes ?? []).find((v) => v.emptyDir !== undefined);

  test("one emptyDir at the same path in all three containers", () => {
    assert.ok(volume, "an emptyDir volume");
    assert.deepEqual(allContainers.map((c) => c.name).sort(), ["haproxy", "kube-haproxy", "render"]);
    const mounts = allContainers.map((c) => (c.volumeMounts ?? []).find((m) => m.name === volume.name));
    for (const [i, mount] of mounts.entries()) assert.ok(mount, `${allContainers[i]!.name} mounts ${volume.name}`);
    assert.equal(new Set(mounts.map((m) => m?.mountPath)).size, 1, "same mountPath everywhere");
    for (const mount of mounts) assert.notEqual(mount?.readOnly, true, "writable: sockets and config are created there");
  });

  function sharedDir(): string {
    const mount = (container("kube-haproxy").volumeMounts ?? []).find((m) => m.name === volume?.name);
    assert.ok(mount);
    return mount.mountPath.replace(/\/+$/, "");
  }

  test("SOCKET, MASTER_SOCKET and CONFIG lie in the shared volume", () => {
    for (const name of ["socket", "master-socket", "config"] as const) {
      const path = flag(name);
      assert.ok(path.startsWith("/"), `${envName(name)} is a Unix path: ${path}`);
      assert.equal(posix.dirname(posix.normalize(path)), sharedDir(), `${envName(name)}=${path} is in ${sharedDir()}`);
    }
  });

  test("haproxy's -S and -f are the ConfigMap's MASTER_SOCKET and CONFIG, the master socket group-writable", () => {
    const argv = haproxyArgv();
    assert.equal(argv[0], "haproxy");    assert.ok(argv.includes("-W"), "master-worker mode (-W)");
    assert.ok(!argv.includes("-D") && !argv.includes("-daemon"), "foreground");
    for (const arg of argv) assert.ok(!arg.includes("$("), `every $(VAR) resolves: ${arg}`);
    const after = (option: string): string => {
      const i = argv.indexOf(option);
      assert.ok(i >= 0 && i + 1 < argv.length, `haproxy ${option} <value>`);
      return argv[i + 1]!;
    };
    const [masterPath, ...bindOptions] = after("-S").split(",");
    assert.equal(masterPath, flag("master-socket"));
    assert.equal(after("-f"), flag("config"));
    // The sidecar runs as another uid: it reaches the master socket through the group.
    const modeAt = bindOptions.indexOf("mode");
    assert.ok(modeAt >= 0, "-S …,mode,<octal>: without it the socket follows the umask (0755) and the sidecar cannot connect");
    assert.equal(Number.parseInt(bindOptions[modeAt + 1] ?? "", 8) & 0o060, 0o060, "group read/write on the master socket");
  });
});

describe("deploy/: the haproxy container", () => {
  test("SIGTERM, the image's stop signal, makes HAProxy stop softly: an open connection is served to its end", { timeout: 60_000 }, async (t) => {
    const defer = deferrer(t);
    const dir = await tempDir(t);
    // A pod that echoes; a client connection through HAProxy to it stays open across the stop.
    const pod = createServer((socket) => socket.on("error", () => {}).pipe(socket)); // probes below may reset
    await new Promise<void>((resolve) => pod.listen(0, "127.0.0.1", resolve));
    defer(() => new Promise((resolve) => pod.close(resolve)));
    const podPort = (pod.address() as { port: number }).port;
    const port = await freePort();
    const backend = makeBackend("default:echo:80", [], { binds: [{ address: "127.0.0.1", port }] });
    await writeFile(join(dir, "haproxy.cfg"), renderConfig([{ backend, slots: 1, filled: new Map([[1, ready("127.0.0.1", podPort)]]) }], { runtimeSocket: join(dir, "runtime.sock") }));
    // `haproxy` on the PATH is the HAProxy under test, as in the image.
    const bin = join(dir, "bin");
    await mkdir(bin);
    const binary = haproxyBinary();
    await symlink(binary.includes("/") ? binary : execFileSync("sh", ["-c", `command -v ${binary}`], { encoding: "utf8" }).trim(), join(bin, "haproxy"));

    const { script } = haproxyWrapper();
    const shell = spawn("/bin/sh", ["-c", script, "haproxy", join(dir, "master.sock"), join(dir, "haproxy.cfg")], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const exited = new Promise<number | null>((resolve) => shell.once("exit", (code) => resolve(code)));
    defer(async () => {
      if (shell.exitCode === null && shell.signalCode === null) process.kill(-shell.pid!, "SIGKILL");
      await exited;
    });
    let output = "";
    shell.stdout.on("data", (chunk) => (output += chunk));
    shell.stderr.on("data", (chunk) => (output += chunk));
    // Until its master CLI answers, the master may still re-execute itself, and a signal then
    // can be lost or fatal (the wrapper asks three times; a test should not depend on that).
    await waitFor(() => output.includes("Loading success"), 15_000, "HAProxy started");
    await masterCommand(join(dir, "master.sock"), "show proc", 10_000);

    const client: Socket = connect({ host: "127.0.0.1", port });
    defer(() => client.destroy());
    let echoed = "";
    client.on("data", (chunk) => (echoed += chunk));
    client.on("error", () => {});
    client.write("before\n");
    await waitFor(() => echoed === "before\n", 5_000, "an echo through HAProxy");

    shell.kill("SIGTERM");
    // Soft stop: the listener closes at once…
    await waitFor(() => new Promise((resolve) => {
      const probe = connect({ host: "127.0.0.1", port });
      probe.once("connect", () => (probe.destroy(), resolve(false)));
      probe.once("error", () => resolve(true));
    }), 10_000, "the listener closed").catch((error: Error) => assert.fail(`${error.message}\n${output}`));
    // …while the open connection still works; a hard stop would have cut it.
    client.write("after\n");
    await waitFor(() => echoed === "before\nafter\n", 5_000, `an echo after the stop signal:\n${output}`);
    client.end();
    assert.equal(await exited, 0, output);
    assert.doesNotMatch(output, /exited with code 143/, "no worker was terminated");
  });
});

describe("deploy/: RBAC is exactly what the code reads", () => {
  // Core "" and named groups, by the client-node API class that src/ uses.
  const API_GROUPS: Record<string, string> = { Core: "", Discovery: "discovery.k8s.io", Apps: "apps", Networking: "networking.k8s.io", Coordination: "coordination.k8s.io", Events: "events.k8s.io" };
  const VERBS: Record<string, string> = { list: "list", read: "get", watch: "watch", create: "create", replace: "update", patch: "patch", delete: "delete" };

  function plural(kind: string): string {
    const lower = kind.toLowerCase();
    return lower.endsWith("s") ? lower : lower.endsWith("y") ? `${lower.slice(0, -1)}ies` : `${lower}s`;
  }

  /** group/resource → verbs, from API paths in string literals and client-node API calls. */
  async function usedByCode(): Promise<Map<string, Set<string>>> {
    const used = new Map<string, Set<string>>();
    const add = (group: string, resource: string, verbs: readonly string[]): void => {
      const key = `${group}/${resource}`;
      const set = used.get(key) ?? new Set<string>();
      for (const verb of verbs) set.add(verb);
      used.set(key, set);
    };
    const files = (await listFiles(join(ROOT, "src"))).filter((f) => f.endsWith(".ts") && !relative(ROOT, f).split("\\").join("/").startsWith("src/sim/"));
    const watchTs = join(ROOT, "src", "kube", "watch.ts");
    assert.ok(files.includes(watchTs));
    for (const file of files) {
      const text = await readFile(file, "utf8");
      // Paths as lists and watches take them: /api/v1/[namespaces/${ns}/]services, /apis/<group>/<version>/…
      for (const [, path] of text.matchAll(/["'`](\/apis?\/[^"'`\s]*)["'`]/g)) {
        const segments = path!.split("/").filter(Boolean);
        const [root, ...rest] = segments;
        const group = root === "api" ? "" : rest.shift()!;
        rest.shift(); // version
        const resourceAt = rest[0] === "namespaces" && rest.length >= 3 ? 2 : 0;
        const resource = rest[resourceAt];
        assert.ok(resource !== undefined && /^[a-z]+$/.test(resource), `${relative(ROOT, file)}: a resource in ${path}`);
        const sub = rest[resourceAt + 2];
        // `<resource>/<name>`: one object read (get), as kube/node.ts reads its Node.
        const named = rest[resourceAt + 1] !== undefined && sub === undefined;
        add(group, sub ? `${resource}/${sub}` : resource, named ? ["get"] : ["list", "watch"]);
      }
      // client-node API objects: const core = kubeConfig.makeApiClient(CoreV1Api); core.listNamespacedService(…)
      const clients = new Map<string, string>();
      for (const [, variable, api] of text.matchAll(/(\w+)\s*=\s*[\w.]*makeApiClient\((\w+?)V\d+\w*Api\)/g)) {
        assert.ok(api! in API_GROUPS, `${relative(ROOT, file)}: API group of ${api}V*Api is unknown to this test; add it to API_GROUPS`);
        clients.set(variable!, API_GROUPS[api!]!);
      }
      for (const [, variable, verb, kind] of text.matchAll(/\b(\w+)\.(list|read|watch|create|replace|patch|delete)(?:Namespaced)?([A-Z]\w*?)(?:ForAllNamespaces|Status)?\(/g)) {
        const group = clients.get(variable!);
        if (group !== undefined) add(group, plural(kind!), [VERBS[verb!]!]);
      }
    }
    assert.ok(used.has("/services") && used.has("discovery.k8s.io/endpointslices"), `the scan finds what src/kube/watch.ts watches: ${[...used.keys()].join(", ")}`);
    return used;
  }

  test("the ClusterRole grants exactly the read verbs src/ uses, per resource (get/list/watch for what it watches, get for what it reads)", async () => {
    const used = await usedByCode();
    for (const [resource, verbs] of used) {
      for (const verb of verbs) assert.ok(["get", "list", "watch"].includes(verb), `src/ now does "${verb}" on ${resource}: review the RBAC (read-only so far) and this test`);
    }
    assert.equal(objects.filter((o) => o.kind === "Role" || o.kind === "RoleBinding").length, 0, "no namespaced Roles");
    const role = only<V1ClusterRole & K8sObject>("ClusterRole");
    const granted = new Map<string, Set<string>>();
    for (const rule of role.rules ?? []) {
      assert.equal(rule.nonResourceURLs, undefined, "no non-resource URLs");
      assert.equal(rule.resourceNames, undefined, "no resourceNames (all objects are read)");
      for (const group of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          assert.ok(group !== "*" && resource !== "*" && !rule.verbs.includes("*"), "no wildcards");
          const key = `${group}/${resource}`;
          granted.set(key, new Set([...(granted.get(key) ?? []), ...rule.verbs]));
        }
      }
    }
    // What is listed and watched is also read one by one (get): informers' objects are fair game.
    const needed = (verbs: Set<string>): string[] => [...new Set([...verbs, "get"])].sort();
    const show = (map: Map<string, Set<string>>, verbs: (v: Set<string>) => string[]) => Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, verbs(v)]));
    assert.deepEqual(show(granted, (v) => [...v].sort()), show(used, needed), "granted vs. used by src/ (a new read needs a rule, and a rule needs a read)");
    assert.equal(role.aggregationRule, undefined);
  });

  test("the ClusterRoleBinding gives that role to the DaemonSet's ServiceAccount, and nothing else", () => {
    const role = only<V1ClusterRole & K8sObject>("ClusterRole");
    const binding = only<V1ClusterRoleBinding & K8sObject>("ClusterRoleBinding");
    const account = only<K8sObject>("ServiceAccount");
    assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata?.name });
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: account.metadata?.name, namespace: account.metadata?.namespace }]);
    assert.equal(podSpec.serviceAccountName, account.metadata?.name);
    assert.equal(daemonSet.metadata?.namespace, account.metadata?.namespace);
  });
});

describe("deploy/: the pod and its containers", () => {
  test("a hostNetwork DaemonSet, rolled one node at a time", () => {
    assert.equal(podSpec.hostNetwork, true);
    assert.equal(podSpec.dnsPolicy, "ClusterFirstWithHostNet");
    assert.notEqual(podSpec.hostPID, true);
    assert.notEqual(podSpec.hostIPC, true);
    assert.equal(podSpec.enableServiceLinks, false, "no Service-link variables next to the KUBE_HAPROXY_* flags");
    assert.equal(typeof podSpec.terminationGracePeriodSeconds, "number");
    assert.equal(daemonSet.spec?.updateStrategy?.type, "RollingUpdate");
    assert.equal(daemonSet.spec?.updateStrategy?.rollingUpdate?.maxUnavailable, 1);
    assert.equal(podSpec.securityContext?.seccompProfile?.type, "RuntimeDefault");
    for (const volume of podSpec.volumes ?? []) assert.equal(volume.hostPath, undefined, `no hostPath volume: ${volume.name}`);
  });

  test("no container escalates; all drop ALL; only haproxy adds a capability, NET_BIND_SERVICE", () => {
    for (const c of allContainers) {
      const sc = c.securityContext;
      assert.ok(sc, `${c.name} has a securityContext`);
      assert.notEqual(sc.privileged, true, `${c.name}: not privileged`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation false`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
      assert.ok(sc.capabilities?.drop?.includes("ALL"), `${c.name}: drops ALL capabilities`);
      assert.deepEqual(sc.capabilities?.add ?? [], c.name === "haproxy" ? ["NET_BIND_SERVICE"] : [], `${c.name}: added capabilities`);
      if (c.name === "haproxy") {
        // uid 0 is allowed here only: without ambient capabilities in Kubernetes, a non-root
        // process cannot use NET_BIND_SERVICE (see deploy/base/daemonset.yaml). Its one capability
        // is the whole of its privilege.
        if (sc.runAsUser === 0) assert.notEqual(sc.runAsNonRoot, true, "haproxy: uid 0 contradicts runAsNonRoot");
        else assert.equal(sc.runAsNonRoot, true, "haproxy: non-root unless deliberately uid 0");
      } else {
        assert.equal(sc.runAsNonRoot, true, `${c.name}: runAsNonRoot`);
        assert.ok(typeof sc.runAsUser === "number" && sc.runAsUser > 0, `${c.name}: a numeric non-root runAsUser`);
      }
    }
  });

  test("all containers share the socket group: runAsGroup = fsGroup (sockets mode 660, config 640)", () => {
    const fsGroup = podSpec.securityContext?.fsGroup;
    assert.ok(typeof fsGroup === "number" && fsGroup > 0);
    for (const c of allContainers) assert.equal(c.securityContext?.runAsGroup, fsGroup, `${c.name}: runAsGroup`);
    assert.equal(container("render").securityContext?.runAsUser, container("kube-haproxy").securityContext?.runAsUser, "render and run are the same user (both write haproxy.cfg)");
  });

  test("every container has CPU and memory requests and a memory limit", () => {
    for (const c of allContainers) {
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${c.name}: requests`);
      assert.ok(c.resources.limits?.memory, `${c.name}: memory limit`);
    }
  });

  function probePort(c: V1Container, probe: V1Probe): number {
    const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
    assert.ok(port !== undefined, `${c.name}: an httpGet or tcpSocket probe`);
    if (typeof port === "number") return port;
    const named = (c.ports ?? []).find((p) => p.name === port);
    assert.ok(named, `${c.name}: named port ${port}`);
    return named.containerPort;
  }

  function checkProbe(c: V1Container, probe: V1Probe | undefined, what: string, address: string, paths: readonly string[]): void {
    assert.ok(probe, `${c.name}: ${what}`);
    const { host, port } = hostPort(address);
    assert.equal(probePort(c, probe), port, `${c.name} ${what}: port of ${address}`);
    const probeHost = probe.httpGet?.host ?? probe.tcpSocket?.host;
    // The kubelet probes from the node; with hostNetwork the pod IP is the node's IP.
    if (host === "0.0.0.0" || host === "::") assert.ok(probeHost === undefined || probeHost === "127.0.0.1", `${c.name} ${what}: host`);
    else assert.equal(probeHost, host, `${c.name} ${what}: host of ${address}`);
    if (probe.httpGet) {
      assert.ok(paths.includes(probe.httpGet.path ?? ""), `${c.name} ${what}: path ${probe.httpGet.path} is one of ${paths.join(", ")}`);
      assert.ok((probe.httpGet.scheme ?? "HTTP") === "HTTP");
    }
  }

  test("the sidecar's probes are /livez and /healthz on HEALTHZ_BIND_ADDRESS", () => {
    const c = container("kube-haproxy");
    const healthz = flag("healthz-bind-address");
    checkProbe(c, c.livenessProbe, "livenessProbe", healthz, ["/livez"]);
    checkProbe(c, c.readinessProbe, "readinessProbe", healthz, ["/healthz"]);
    if (c.startupProbe) checkProbe(c, c.startupProbe, "startupProbe", healthz, ["/livez", "/healthz"]);
    const declared = (c.ports ?? []).find((p) => p.containerPort === hostPort(healthz).port);
    if (c.ports?.length) assert.ok(declared, "the healthz port is declared (a host port, with hostNetwork)");
  });

  test("haproxy's probes are its monitor-uri /healthz on STATS_BIND_ADDRESS", () => {
    const c = container("haproxy");
    const stats = flag("stats-bind-address");
    checkProbe(c, c.readinessProbe, "readinessProbe", stats, ["/healthz"]);
    if (c.livenessProbe) checkProbe(c, c.livenessProbe, "livenessProbe", stats, ["/healthz"]);
  });
});

// ---------------------------------------------------------------------------------------------
// The Dockerfile

interface Instruction {
  readonly op: string;
  readonly args: string;
}

interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  readonly args: ReadonlyMap<string, string>;
  readonly stages: Stage[];
}

function parseDockerfile(text: string): Dockerfile {
  const lines: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, "");
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    pending += line;
    if (pending.trim() !== "") lines.push(pending.trim());
    pending = "";
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, rest] = /^(\S+)\s*(.*)$/.exec(line)!;
    const instruction = { op: op!.toUpperCase(), args: rest! };
    if (instruction.op === "FROM") {
      const expanded = rest!.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a?: string, b?: string) => args.get((a ?? b)!) ?? whole);
      const [from, as, name] = expanded.split(/\s+/);
      stages.push({ from: from!, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(instruction.op, "ARG", `${instruction.op} before FROM`);
      const [name, value] = rest!.split("=");
      args.set(name!, value ?? "");
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/** .dockerignore: last matching pattern wins; a pattern matches a path or any of its parents. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((line) => {
      const negate = line.startsWith("!");
      const pattern = posix.normalize((negate ? line.slice(1) : line).trim()).replace(/^\/+|\/+$/g, "");
      const source = pattern
        .split(/(\*\*|\*|\?)/)
        .map((part) => (part === "**" ? ".*" : part === "*" ? "[^/]*" : part === "?" ? "[^/]" : part.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
        .join("");
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const parts = posix.normalize(path).replace(/^\.?\/+|\/+$/g, "").split("/");
    let excluded = false;
    for (const rule of rules) {
      for (let i = 1; i <= parts.length; i++) {
        if (rule.re.test(parts.slice(0, i).join("/"))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

/** JSON (exec) form of ENTRYPOINT/CMD. */
function execForm(instruction: Instruction | undefined, what: string): string[] {
  assert.ok(instruction, `the final stage has ${what}`);
  const value = JSON.parse(instruction.args) as unknown;
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === "string"), `${what} in JSON form: ${instruction.args}`);
  return value;
}

function copyArgs(instruction: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const words = instruction.args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith("--")) {
    const option = words.shift()!;
    if (option.startsWith("--from=")) from = option.slice("--from=".length);
  }
  assert.ok(words.length >= 2, `COPY <src>… <dest>: ${instruction.args}`);
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

const { args: dockerArgs, stages: dockerfile } = parseDockerfile(await readFile(join(ROOT, "Dockerfile"), "utf8"));
const ignored = dockerignore(await readFile(join(ROOT, ".dockerignore"), "utf8"));

describe("Dockerfile", () => {
  const final = dockerfile.at(-1)!;
  const last = (op: string): Instruction | undefined => final.instructions.filter((i) => i.op === op).at(-1);

  test("the official HAProxy image of a pinned version, Node 24 copied in, the DaemonSet's user, NODE_ENV=production", () => {
    assert.ok(dockerfile.length >= 2, "multi-stage");
    const version = dockerArgs.get("HAPROXY_VERSION");
    assert.match(version ?? "", /^\d+\.\d+\.\d+$/, "ARG HAPROXY_VERSION pins an exact HAProxy version (no lts, no latest)");
    assert.equal(final.from, `haproxy:${version}`, "the final stage is the official HAProxy image of that version");
    for (const stage of dockerfile.slice(0, -1)) assert.equal(stage.from, "node:24-slim");
    const node = final.instructions.filter((i) => i.op === "COPY").map(copyArgs).find((c) => c.sources.includes("/usr/local/bin/node"));
    assert.ok(node?.from && dockerfile.find((stage) => stage.name === node.from)?.from === "node:24-slim", "node copied from node:24-slim");
    const runs = final.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    assert.ok(!runs.some((r) => /apt-get install\b.*\bhaproxy\b/.test(r)), "no second HAProxy from the distribution: `haproxy -c` is the image's own");
    const user = last("USER")?.args;
    assert.ok(user, "a USER");
    const [uid, gid] = user.split(":");
    const sidecar = container("kube-haproxy").securityContext;
    assert.equal(Number(uid), sidecar?.runAsUser, "numeric USER = the DaemonSet's runAsUser");
    if (gid !== undefined) assert.equal(Number(gid), sidecar?.runAsGroup, "USER's group = the DaemonSet's runAsGroup");
    assert.ok(final.instructions.some((i) => i.op === "ENV" && /\bNODE_ENV=production\b/.test(i.args)));
    // The haproxy base image's SIGUSR1 would open Node's debugger in the sidecar.
    assert.equal(last("STOPSIGNAL")?.args, "SIGTERM");
  });

  test("deploy/ runs this one image in every container, by a tag that names its HAProxy version", () => {
    const images = new Set(allContainers.map((c) => imageName(c.image ?? "")));
    assert.equal(images.size, 1, `one image for ${allContainers.map((c) => c.name).join(", ")}: ${[...images].join(", ")}`);
    const entry = (kustomization.images ?? []).find((i) => i.name === [...images][0]);
    assert.ok(entry?.newTag, "the kustomization pins the image by a tag");
    assert.ok(entry.newTag.endsWith(`-haproxy${dockerArgs.get("HAPROXY_VERSION")}`), `tag ${entry.newTag} ends in -haproxy<the Dockerfile's HAPROXY_VERSION>`);
  });

  test(".dockerignore keeps out what the image does not need", () => {
    // The simulated cluster (a fake API server with a test token) and the demo stay out too.
    for (const path of ["node_modules", "node_modules/yaml/package.json", "test/deploy.test.ts", "bench", ".git", ".ci/run", "deploy/base/daemonset.yaml", "README.md", "src/sim/api-server.ts", "src/demo.ts"]) {
      assert.ok(ignored(path), `${path} is excluded from the build context`);
    }
    for (const path of ["src/main.js", "src/cli.ts", "src/haproxy/render.ts", "package-lock.json"]) assert.ok(!ignored(path), `${path} is in the build context`);
  });

  test("every path COPYed from the build context exists and is not excluded by .dockerignore", () => {
    let copies = 0;
    for (const stage of dockerfile) {
      for (const instruction of stage.instructions.filter((i) => i.op === "COPY" || i.op === "ADD")) {
        assert.equal(instruction.op, "COPY", "COPY, not ADD");
        const { from, sources } = copyArgs(instruction);
        if (from !== undefined) continue;
        for (const source of sources) {
          copies++;
          assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: exists in the repository`);
          assert.ok(!ignored(source), `COPY ${source}: not excluded by .dockerignore`);
        }
      }
    }
    assert.ok(copies >= 3);
  });

  test("the image's ENTRYPOINT starts with production dependencies only (--help)", { timeout: 180_000 }, async (t) => {
    // Replays the Dockerfile's WORKDIR, COPY and `npm ci` steps into a temporary directory per
    // stage (absolute image paths map into it), then runs ENTRYPOINT and ENTRYPOINT + CMD.
    const temp = await mkdtemp(join(tmpdir(), "kh-image-"));
    t.after(() => rm(temp, { recursive: true, force: true }));
    const roots = new Map<string, string>();
    const inRoot = (root: string, path: string): string => join(root, ...path.split("/").filter(Boolean));
    let root = "";
    let env: Record<string, string> = {};
    let workdir = "/";
    for (const [index, stage] of dockerfile.entries()) {
      root = join(temp, `stage-${index}`);
      await mkdir(root, { recursive: true });
      if (stage.name) roots.set(stage.name, root);
      workdir = "/";
      env = {};
      for (const instruction of stage.instructions) {
        if (instruction.op === "WORKDIR") {
          workdir = posix.resolve(workdir, instruction.args);
          await mkdir(inRoot(root, workdir), { recursive: true });
        } else if (instruction.op === "ENV") {
          for (const [, key, value] of instruction.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[key!] = value!.replace(/^"|"$/g, "");
        } else if (instruction.op === "COPY") {
          const { from, sources, dest } = copyArgs(instruction);
          // Files of a base image (node's binary): this test runs this very node instead.
          if (from !== undefined && dockerfile.find((s) => s.name === from)?.instructions.length === 0) continue;
          const fromRoot = from === undefined ? ROOT : roots.get(from);
          assert.ok(fromRoot, `COPY --from=${from}: an earlier stage`);
          const target = inRoot(root, posix.resolve(workdir, dest));
          for (const source of sources) {
            const origin = from === undefined ? join(ROOT, source) : inRoot(fromRoot, source);
            const isDir = (await stat(origin)).isDirectory();
            const to = isDir || !(dest.endsWith("/") || sources.length > 1) ? target : join(target, basename(source));
            await cp(origin, to, {
              recursive: true,
              filter: (path) => from !== undefined || !ignored(relative(ROOT, path).split("\\").join("/") || "."),
            });
          }
        } else if (instruction.op === "RUN" && /^npm ci\b/.test(instruction.args)) {
          const words = instruction.args.split(/\s+/);
          assert.ok(words.every((w) => /^[\w=.:/-]+$/.test(w)), `a plain npm command: ${instruction.args}`);
          assert.ok(words.includes("--omit=dev"), "npm ci --omit=dev");
          const npm = await run("npm", [...words.slice(1), "--prefer-offline", "--loglevel=error"], { cwd: inRoot(root, workdir), timeoutMs: 120_000 });
          assert.equal(npm.code, 0, `npm ci failed:\n${npm.stderr}`);
        }
      }
    }
    const entrypoint = execForm(last("ENTRYPOINT"), "ENTRYPOINT");
    const cmd = execForm(last("CMD"), "CMD");
    assert.equal(entrypoint[0], "node");
    assert.ok(!existsSync(inRoot(root, `${workdir}/node_modules/typescript`)), "dev dependencies stay out");
    // `node` in the image is Node 24: run this very node; image paths map into the stage.
    const argv = entrypoint.slice(1).map((arg) => (arg.startsWith("/") ? inRoot(root, arg) : arg));
    const options = { cwd: inRoot(root, workdir), env: { ...process.env, ...env, NO_COLOR: "1" }, timeoutMs: 60_000 };

    const help = await run(process.execPath, [...argv, "--help"], options);
    assert.equal(help.code, 0, `ENTRYPOINT --help exited ${help.code}:\n${help.stderr}`);
    assert.match(help.stdout, /USAGE/);
    assert.match(help.stdout, /kube-haproxy/);
    for (const subcommand of ["run", "render"]) assert.match(help.stdout, new RegExp(`\\b${subcommand}\\b`));

    assert.ok(cmd.length > 0 && SUBCOMMANDS.has(cmd[0]!), `CMD is a subcommand: ${cmd.join(" ")}`);
    const cmdHelp = await run(process.execPath, [...argv, ...cmd, "--help"], options);
    assert.equal(cmdHelp.code, 0, `ENTRYPOINT CMD --help exited ${cmdHelp.code}:\n${cmdHelp.stderr}`);
    assert.match(cmdHelp.stdout, /--socket/);
  });
});
