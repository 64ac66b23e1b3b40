// Exposure is a choice: in onlyfetch every served Service port is bound on every node, so by
// default only the Services labelled kube-haproxy.io/expose=true are served (--expose labelled);
// --expose all serves every Service, as before.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { V1Service } from "@kubernetes/client-node";
import { ALGORITHMS } from "../src/haproxy/algorithms.ts";
import { LABEL_EXPOSE, serviceLabelSelector, translateService, type TranslateOptions } from "../src/kube/translate.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { get } from "../src/sim/pods.ts";
import { runCli, tempDir, waitFor } from "./helpers.ts";
import { world } from "./world.ts";

const OPTIONS: TranslateOptions = { bindAddress: "127.0.0.1", algorithm: "roundrobin", algorithms: ALGORITHMS, minSlots: 4, onlyLabelled: true };

const unlabelled = (service: V1Service): void => void delete service.metadata!.labels![LABEL_EXPOSE];

test("the Service selector asks the API server for labelled Services only, unless all are exposed", () => {
  assert.equal(serviceLabelSelector(undefined, true), "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless,kube-haproxy.io/expose=true");
  assert.equal(serviceLabelSelector("kube-haproxy", true), "!service.kubernetes.io/headless,kube-haproxy.io/expose=true");
  assert.equal(serviceLabelSelector(undefined, false), "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless");
});

test("translateService with onlyLabelled: expose=true is served; no label or another value is skipped as not-exposed", () => {
  const ports = [{ name: "http", port: 8080 }];
  assert.equal(translateService(makeService("a", "public", ports), [], OPTIONS).backends.length, 1);
  for (const patch of [unlabelled, (s: V1Service) => void (s.metadata!.labels![LABEL_EXPOSE] = "false")]) {
    const { backends, skipped } = translateService(makeService("a", "internal", ports, patch), [], OPTIONS);
    assert.equal(backends.length, 0);
    assert.deepEqual(skipped.map((s) => s.reason), ["not-exposed"]);
  }
  assert.equal(translateService(makeService("a", "internal", ports, unlabelled), [], { ...OPTIONS, onlyLabelled: false }).backends.length, 1);
});

test("render: only the labelled Service by default, every Service with --expose all", async (t) => {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir, { tls: false });
  t.after(() => cluster.stop());
  cluster.api.upsert("services", makeService("shop", "public", [{ port: 18080 }]));
  cluster.api.upsert("services", makeService("shop", "database", [{ port: 15432 }], unlabelled));
  for (const name of ["public", "database"]) cluster.api.upsert("endpointslices", makeSlice("shop", name, `${name}-1`, [{ ip: "127.0.0.9" }], [{ port: 9 }]));
  const flags = ["--kubeconfig", cluster.kubeconfig, "--bind-address", "127.0.0.1", "--stats-bind-address="];
  const backends = async (config: string): Promise<string[]> => [...(await readFile(config, "utf8")).matchAll(/^(?:listen|backend) (\S+)/gm)].map((m) => m[1]!);

  const byDefault = await runCli(["render", ...flags, "--config", join(dir, "default.cfg")]);
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.deepEqual(await backends(join(dir, "default.cfg")), ["shop:public:18080"]);
  const all = await runCli(["render", ...flags, "--config", join(dir, "all.cfg"), "--expose", "all"]);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(await backends(join(dir, "all.cfg")), ["shop:database:15432", "shop:public:18080"]);
});

test("run: a Service whose label is removed stops being served; labelled again, it is served again", async (t) => {
  const w = await world(t, "http");
  await get(w.url); // served: the world's Service is labelled
  const service = (patch: (s: V1Service) => void = () => {}): V1Service =>
    makeService("default", "web", [{ port: w.port }], (s) => {
      s.metadata!.annotations!["kube-haproxy.io/mode"] = "http";
      patch(s);
    });
  w.cluster.api.upsert("services", service(unlabelled));
  await waitFor(() => get(w.url, 500).then(() => false, () => true), 15_000, "the frontend gone after the reload");
  w.cluster.api.upsert("services", service());
  await waitFor(() => get(w.url, 500).then(() => true, () => false), 15_000, "served again");
});
