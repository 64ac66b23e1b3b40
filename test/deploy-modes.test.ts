// deploy/'s modes: deploy/ (onlyfetch) is the base as it is; deploy/local/ and deploy/mesh/ are
// overlays that set the mode's flags and give the sidecar exactly what the capture needs
// (uid 0, every capability dropped but NET_ADMIN; deploy/components/capture). Built with
// `kubectl kustomize` and compared with the base: nothing else changes. test/deploy.test.ts
// checks the base itself.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { V1ConfigMap, V1Container, V1DaemonSet } from "@kubernetes/client-node";
import { parse, parseAllDocuments } from "yaml";
import { resolveOptions } from "../src/options.ts";

const DEPLOY = join(import.meta.dirname, "..", "deploy");
const KUBECTL = (process.env.PATH ?? "").split(":").map((dir) => join(dir, "kubectl")).find((path) => existsSync(path));
const SKIP = KUBECTL ? {} : { skip: "kubectl is not installed (kubectl kustomize builds the overlays)" };

interface Built {
  readonly daemonSet: V1DaemonSet;
  readonly flags: Record<string, string>;
}

function kustomize(dir: string): Promise<Built> {
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL!, ["kustomize", dir], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`kubectl kustomize ${dir}: exit ${code}: ${stderr}`));
      const docs = parseAllDocuments(stdout).map((doc) => doc.toJS() as { kind?: string });
      const daemonSet = docs.find((doc) => doc.kind === "DaemonSet") as V1DaemonSet;
      const configMap = docs.find((doc) => doc.kind === "ConfigMap") as V1ConfigMap;
      resolve({ daemonSet, flags: { ...configMap.data } });
    });
  });
}

function containers(daemonSet: V1DaemonSet): V1Container[] {
  const spec = daemonSet.spec!.template.spec!;
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/**
 * The DaemonSet without what the capture component adds (NODE_NAME and the sidecar's
 * securityContext) and without the flags ConfigMap's content hash, which differs by design.
 */
function withoutCapture(daemonSet: V1DaemonSet): unknown {
  const copy = structuredClone(daemonSet);
  for (const c of containers(copy)) {
    for (const from of c.envFrom ?? []) if (from.configMapRef) from.configMapRef.name = "kube-haproxy-flags";
    c.env = (c.env ?? []).filter((e) => e.name !== "NODE_NAME");
    if (c.env.length === 0) delete c.env;
    if (c.name === "kube-haproxy") delete c.securityContext;
  }
  // A strategic merge patch may reorder the containers it names; the order means nothing.
  copy.spec!.template.spec!.containers.sort((a, b) => (a.name < b.name ? -1 : 1));
  return copy;
}

test("deploy/ is the base as it is (onlyfetch)", async () => {
  const top = parse(await readFile(join(DEPLOY, "kustomization.yaml"), "utf8")) as Record<string, unknown>;
  assert.deepEqual(top.resources, ["base"]);
  assert.deepEqual(Object.keys(top).sort(), ["apiVersion", "kind", "resources"]);
});

for (const mode of ["local", "mesh"] as const) {
  describe(`deploy/${mode}/`, SKIP, () => {
    test("every file in the overlay is used by its kustomization", async () => {
      const files = (await readdir(join(DEPLOY, mode))).sort();
      const kustomization = parse(await readFile(join(DEPLOY, mode, "kustomization.yaml"), "utf8")) as {
        resources: string[];
        components: string[];
        configMapGenerator: { name: string; behavior: string; envs: string[] }[];
      };
      assert.deepEqual(kustomization.resources, ["../base"]);
      assert.deepEqual(kustomization.components, ["../components/capture"]);
      assert.deepEqual(kustomization.configMapGenerator, [{ name: "kube-haproxy-flags", behavior: "merge", envs: ["flags.env"] }]);
      assert.deepEqual(files, ["flags.env", "kustomization.yaml"]);
    });

    test(`builds; its flags pass the CLI's validation for run, render and capture, in ${mode} mode`, async () => {
      const { flags } = await kustomize(join(DEPLOY, mode));
      for (const command of ["run", "render", "capture"] as const) {
        const options = resolveOptions({}, flags, command);
        assert.equal(options.proxyMode, mode);
        assert.ok(options.serviceCidrs.length > 0);
      }
    });

    test("the sidecar: uid 0 with every capability dropped but NET_ADMIN, no escalation; the node's name for render and the sidecar; nothing else changed", async () => {
      const [base, built] = await Promise.all([kustomize(DEPLOY), kustomize(join(DEPLOY, mode))]);
      const byName = new Map(containers(built.daemonSet).map((c) => [c.name, c]));
      const sidecar = byName.get("kube-haproxy")!;
      assert.deepEqual(sidecar.securityContext, {
        runAsUser: 0,
        runAsGroup: 10001,
        runAsNonRoot: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"], add: ["NET_ADMIN"] },
      });
      for (const name of ["render", "kube-haproxy"]) {
        const env = byName.get(name)!.env?.find((e) => e.name === "NODE_NAME");
        assert.deepEqual(env?.valueFrom, { fieldRef: { fieldPath: "spec.nodeName" } }, `${name}: NODE_NAME`);
      }
      assert.equal(built.daemonSet.spec!.template.spec!.hostNetwork, true);
      assert.deepEqual(withoutCapture(built.daemonSet), withoutCapture(base.daemonSet));
    });
  });
}
