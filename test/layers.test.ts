// Dependencies point one way: kube -> model <- dataplane -> haproxy (DESIGN.md). Read from the
// sources' own import lines, so a wrong import fails here, not in review.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..");

type Layer = "leaf" | "model" | "kube" | "proxier" | "haproxy" | "dataplane" | "metrics" | "sim" | "wiring";

function layerOf(file: string): Layer {
  if (["src/errors.ts", "src/log.ts", "src/address.ts"].includes(file)) return "leaf";
  if (file === "src/model.ts") return "model";
  if (file === "src/proxier.ts") return "proxier";
  const folder = /^src\/([^/]+)\//.exec(file)?.[1];
  if (folder === "kube" || folder === "haproxy" || folder === "dataplane" || folder === "metrics" || folder === "sim") return folder;
  return "wiring"; // cli, commands, sidecar, bootstrap, compose, observe, options, status, demo
}

/** Which layers each layer may import (itself always). */
const ALLOWED: Record<Exclude<Layer, "wiring" | "sim">, readonly Layer[]> = {
  leaf: [],
  model: ["leaf"],
  kube: ["model", "leaf"],
  proxier: ["kube", "model", "leaf"],
  haproxy: ["model", "leaf"],
  dataplane: ["haproxy", "model", "leaf"],
  metrics: ["leaf"],
};
/** Packages: only the Kubernetes side knows Kubernetes objects. */
const KUBERNETES_CLIENT = "@kubernetes/client-node";
const MAY_USE_KUBERNETES_CLIENT: readonly Layer[] = ["kube", "proxier", "wiring", "sim"];
/** What `run`, `render` and `status` load must not pull in the simulated cluster. */
const PRODUCTION_WIRING = ["src/sidecar.ts", "src/bootstrap.ts", "src/compose.ts", "src/observe.ts", "src/options.ts", "src/status.ts"];

interface Import {
  readonly from: string;
  /** A repository path for a relative import, else the package name. */
  readonly to: string;
}

/** Every violation of the rules above in `imports`. */
function violations(imports: readonly Import[]): string[] {
  const out: string[] = [];
  for (const { from, to } of imports) {
    const source = layerOf(from);
    if (!to.startsWith("src/")) {
      if (to.startsWith(KUBERNETES_CLIENT) && !MAY_USE_KUBERNETES_CLIENT.includes(source)) out.push(`${from} (${source}) imports ${to}`);
      continue;
    }
    const target = layerOf(to);
    if (PRODUCTION_WIRING.includes(from) && target === "sim") out.push(`${from} imports the simulated cluster ${to}`);
    if (source === "wiring" || source === "sim" || target === source) continue;
    if (!ALLOWED[source].includes(target)) out.push(`${from} (${source}) imports ${to} (${target})`);
  }
  return out;
}

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(folder, entry.name)) : entry.name.endsWith(".ts") ? [join(folder, entry.name)] : [],
  );
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/gm)].map((m) => m[1] ?? m[2]!);
  return specifiers.map((specifier) => ({
    from: file,
    to: specifier.startsWith(".") ? relative(ROOT, resolve(dirname(join(ROOT, file)), specifier)) : specifier,
  }));
}

test("imports point one way: kube -> model <- dataplane -> haproxy; metrics observe; run/render/status load no simulation", () => {
  const imports = sources("src").flatMap(importsOf);
  assert.ok(imports.length > 100, `imports read (${imports.length})`);
  assert.deepEqual(violations(imports), []);
});

test("the rule catches a wrong direction", () => {
  assert.deepEqual(violations([
    { from: "src/kube/translate.ts", to: "src/haproxy/names.ts" },
    { from: "src/model.ts", to: "src/dataplane/planner.ts" },
    { from: "src/haproxy/render.ts", to: "src/dataplane/slots.ts" },
    { from: "src/dataplane/dataplane.ts", to: "src/kube/watch.ts" },
    { from: "src/haproxy/commands.ts", to: "@kubernetes/client-node" },
    { from: "src/sidecar.ts", to: "src/sim/world.ts" },
    { from: "src/dataplane/planner.ts", to: "src/haproxy/render.ts" },
  ]).length, 6);
});
