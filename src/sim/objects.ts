// Builders for the Kubernetes objects the simulated cluster serves: Services and
// EndpointSlices shaped as the API server returns them. Shared by tests, bench and demo.

import type { V1EndpointSlice, V1Service, V1ServicePort } from "@kubernetes/client-node";
import { LABEL_EXPOSE } from "../kube/translate.ts";

export interface PodEndpoint {
  readonly ip: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

/** Labelled kube-haproxy.io/expose=true: served under the default --expose labelled. */
export function makeService(namespace: string, name: string, ports: V1ServicePort[], patch: (service: V1Service) => void = () => {}): V1Service {
  const service: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { namespace, name, labels: { [LABEL_EXPOSE]: "true" }, annotations: {} },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.10", ports: ports.map((port) => ({ protocol: "TCP", ...port })) },
  };
  patch(service);
  return service;
}

export function makeSlice(
  namespace: string,
  service: string,
  name: string,
  endpoints: readonly PodEndpoint[],
  ports: { name?: string; port: number; protocol?: string }[],
  patch: (slice: V1EndpointSlice) => void = () => {},
): V1EndpointSlice {
  const slice: V1EndpointSlice = {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      namespace,
      name,
      labels: { "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" },
      annotations: { "endpoints.kubernetes.io/last-change-trigger-time": new Date().toISOString() },
    },
    addressType: endpoints.some((e) => e.ip.includes(":")) ? "IPv6" : "IPv4",
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
    ports: ports.map((port) => ({ protocol: "TCP", ...port })),
  };
  patch(slice);
  return slice;
}
