/**
 * --xds-tls-secret against a real kube-apiserver: the operator serves xDS with the certificate in a
 * Secret shaped as cert-manager writes it (kubernetes.io/tls: tls.crt, tls.key, ca.crt), publishes
 * that ca.crt as tether-xds-ca and creates no CA of its own; a renewal in the Secret is served to new
 * connections while an open ADS stream stays; a Secret whose key does not match is refused with an
 * error naming it, and the certificate served so far is kept.
 */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { AdsClient } from "@tether/xds";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, type CertifiedKey } from "../src/pki/index.ts";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";
import { waitFor } from "./helpers/wait.ts";

const NS = "tether-system";
const SECRET = "tether-xds-tls";
const XDS_NAME = `tether-xds.${NS}.svc.cluster.local`;
const NAMES = ["tether-xds", `tether-xds.${NS}`, `tether-xds.${NS}.svc`, XDS_NAME];
const DAY = 86_400_000;
const silent = { debug(): void {}, info(): void {}, warn(): void {}, error(): void {} };

let cluster: TestCluster;
let operator: OperatorProcess;
let dir: string;
const validity = (): { notBefore: Date; notAfter: Date } => ({
  notBefore: new Date(Date.now() - DAY),
  notAfter: new Date(Date.now() + 30 * DAY),
});
const ca = createCa("cert-manager test CA", validity());
const leaf = issueServing(ca, NAMES, validity());
/** What the operator serves after each test: its certificate and the CA that verifies it. */
let expected = { cert: leaf, caPem: ca.certPem };

/** The Secret as cert-manager writes it for a CA issuer. */
function secretYaml(cert: CertifiedKey, key: string, bundle: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  return `apiVersion: v1
kind: Secret
metadata: {name: ${SECRET}, namespace: ${NS}, annotations: {cert-manager.io/certificate-name: tether-xds}}
type: kubernetes.io/tls
data:
  tls.crt: ${b64(cert.certPem)}
  tls.key: ${b64(key)}
  ca.crt: ${b64(bundle)}
`;
}

/** The certificate a fresh handshake sees, verified against `caPem` only, for the Service's name. */
function served(caPem: string): Promise<X509Certificate> {
  const [host = "", port = ""] = operator.xdsAddress.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port: Number(port), ca: caPem, servername: XDS_NAME, ALPNProtocols: ["h2"] },
      () => {
        const cert = socket.getPeerX509Certificate();
        socket.destroy();
        if (cert === undefined) reject(new Error("no peer certificate"));
        else resolve(cert);
      },
    );
    socket.on("error", reject);
  });
}

const serial = (c: CertifiedKey): string => new X509Certificate(c.certPem).serialNumber;

beforeAll(async () => {
  buildOperator();
  dir = mkdtempSync(join(tmpdir(), "tether-xds-tls-secret-"));
  cluster = await TestCluster.start();
  await cluster.ok(["create", "namespace", NS]);
  await cluster.ok(["apply", "-f", "-"], secretYaml(leaf, leaf.keyPem, ca.certPem));
  operator = await OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: [
      ...["--leader-elect", "false", "--resync-period", "0", "--xds-auth", "false"],
      ...["--xds-service", `tether-xds.${NS}`, "--xds-tls-secret", SECRET],
    ],
    env: { POD_NAMESPACE: NS },
  });
});

afterAll(async () => {
  await (operator as OperatorProcess | undefined)?.stop();
  await (cluster as TestCluster | undefined)?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("xDS TLS from a cert-manager Secret", () => {
  it("serves the Secret's certificate, publishes its ca.crt to tether-xds-ca and creates no CA of its own", async () => {
    const cert = await served(ca.certPem);
    expect(cert.serialNumber).toBe(serial(leaf));
    expect(cert.checkHost(XDS_NAME)).toBe(XDS_NAME);
    await cluster.apply(`apiVersion: tether.dev/v1alpha1
kind: PolicyServerCluster
metadata: {name: ps}
spec: {port: 44443, external: {servers: [{host: 192.0.2.1}]}}
---
apiVersion: tether.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  policyServerClusterRef: {name: ps}
  template: {spec: {containers: [{name: agent, image: "agent:1"}]}}
`);
    await cluster.waitFor("configmap", "tether-xds-ca", (o) => o.data?.["ca.crt"] === ca.certPem);
    expect(await cluster.get("secret", "tether-ca", NS)).toBeUndefined();
    expect(operator.lines.find((l) => l["msg"] === "tether-operator starting")?.["xdsTls"]).toBe(
      `certificate from Secret ${NS}/${SECRET}`,
    );
  });

  it("serves a renewal to new connections while an open ADS stream stays, and republishes a changed ca.crt", async () => {
    // A sidecar's ADS client trusting the old and the new CA, connected before the renewal.
    const next = createCa("cert-manager test CA 2", validity());
    const bundleFile = join(dir, "bundle.crt");
    writeFileSync(bundleFile, ca.certPem + next.certPem);
    const [host = "", port = ""] = operator.xdsAddress.split(":");
    const states: boolean[] = [];
    let clusters: string[] | undefined;
    const client = new AdsClient(
      {
        target: { host, port: Number(port) },
        node: { id: "default/web-0", cluster: "default/agent/web" },
        backoff: { baseMs: 50, maxMs: 200 },
        log: silent,
        tls: { caFile: bundleFile, sni: XDS_NAME, verifyName: XDS_NAME },
      },
      {
        onResources: (type, _version, resources) => {
          if (type === "cluster") clusters = [...resources.keys()];
          return Promise.resolve(undefined);
        },
        onConnectionState: (connected) => {
          states.push(connected);
        },
      },
    );
    client.start();
    try {
      await waitFor("CDS on the ADS stream", () => clusters);
      const renewed = issueServing(next, NAMES, validity());
      expected = { cert: renewed, caPem: next.certPem };
      await cluster.ok(["apply", "-f", "-"], secretYaml(renewed, renewed.keyPem, next.certPem + ca.certPem));
      const seen = await waitFor("the renewed certificate on a new handshake", async () => {
        const c = await served(next.certPem);
        return c.serialNumber === serial(renewed) ? c : undefined;
      });
      expect(seen.checkHost(XDS_NAME)).toBe(XDS_NAME);
      await cluster.waitFor(
        "configmap",
        "tether-xds-ca",
        (o) => o.data?.["ca.crt"] === next.certPem + ca.certPem,
      );
      // The stream opened before the renewal was never dropped.
      expect(states).toEqual([true]);
    } finally {
      await client.stop();
    }
  });

  it("refuses a Secret whose key does not match its certificate, naming it, and keeps serving the last good one", async () => {
    expect((await served(expected.caPem)).serialNumber).toBe(serial(expected.cert));
    const other = issueServing(ca, NAMES, validity());
    const stranger = issueServing(ca, NAMES, validity());
    await cluster.ok(["apply", "-f", "-"], secretYaml(other, stranger.keyPem, ca.certPem));
    const refusal = await waitFor("the refusal in the log", () =>
      operator.lines.find(
        (l) => typeof l["msg"] === "string" && l["msg"].includes("tls.key does not match tls.crt"),
      ),
    );
    expect(refusal["msg"]).toContain(`xDS TLS Secret ${NS}/${SECRET}`);
    expect(refusal["msg"]).toContain("keeping the current certificate");
    expect(refusal["level"]).toBe(50); // pino's error
    // Still the certificate served before (not `other`), and the bundle published before.
    expect((await served(expected.caPem)).serialNumber).toBe(serial(expected.cert));
    expect((await cluster.get("configmap", "tether-xds-ca"))?.data?.["ca.crt"]).not.toBe(ca.certPem);
  });
});
