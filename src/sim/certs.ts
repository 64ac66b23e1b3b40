// Throwaway TLS material for the fake API server: a CA and a server certificate for
// 127.0.0.1 / localhost, made by the system `openssl`. The binary is spawned
// asynchronously on purpose: the fake API server may share its process (and event loop)
// with the code under test, which must never be blocked by a synchronous child process.

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCertificates {
  /** PEM of the self-signed CA (what a kubeconfig puts in certificate-authority-data). */
  ca: string;
  /** PEM of the server certificate, signed by the CA, SANs IP:127.0.0.1 and DNS:localhost. */
  cert: string;
  /** PEM of the server certificate's private key (unencrypted). */
  key: string;
}

/** Creates the CA and server certificate as files in `dir` (created if missing) and returns their PEM text. */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  // EC P-256 keys: generated in milliseconds, unlike RSA, which keeps test start-up fast.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

  await run("openssl", [
    "req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2",
    "-subj", "/CN=kube-haproxy-test-ca",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await run("openssl", [
    "req", "-new", ...ec, "-keyout", p("server.key"), "-out", p("server.csr"),
    "-subj", "/CN=127.0.0.1",
  ]);
  // Extensions go through a file because `openssl x509 -req` ignores the CSR's own.
  await writeFile(
    p("server.ext"),
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid,issuer",
      "",
    ].join("\n"),
  );
  await run("openssl", [
    "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
    "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", "2",
    "-extfile", p("server.ext"), "-out", p("server.crt"),
  ]);

  const [ca, cert, key] = await Promise.all(
    ["ca.crt", "server.crt", "server.key"].map((f) => readFile(p(f), "utf8")),
  );
  return { ca: ca!, cert: cert!, key: key! };
}
