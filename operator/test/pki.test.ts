/**
 * The operator's CA against a real kube-apiserver: the Secret is created when missing and reused by
 * a second operator (each replica serving its own certificate from it); replicas racing on a
 * missing Secret end with one CA; rotation, on a controlled clock, publishes the successor beside
 * the old CA, promotes it (the serving certificate follows) and drops the old one at its expiry.
 */
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../src/kube/client.ts";
import {
  CertificateAuthority,
  ServingCertificate,
  splitPem,
  type ServingIdentity,
} from "../src/pki/index.ts";
import { TestCluster } from "./helpers/cluster.ts";
import { buildOperator, OperatorProcess } from "./helpers/operator-process.ts";

const NS = "tether-system";
const XDS_NAME = "tether-xds.tether-system.svc.cluster.local";
const DAY = 86_400_000;
const log = pino({ level: "silent" });

let cluster: TestCluster;
let client: KubeClient;
const operators: OperatorProcess[] = [];

beforeAll(async () => {
  buildOperator();
  cluster = await TestCluster.start();
  await cluster.ok(["create", "namespace", NS]);
  client = await KubeClient.create({}, cluster.kubeconfig);
});

afterAll(async () => {
  for (const op of operators) await op.stop();
  await (client as KubeClient | undefined)?.close();
  await (cluster as TestCluster | undefined)?.stop();
});

async function caSecret(name: string): Promise<{ rv: string; data: Record<string, string> }> {
  const s = await cluster.get("secret", name, NS);
  if (s === undefined) throw new Error(`no Secret ${name}`);
  const data = Object.fromEntries(
    Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]),
  );
  return { rv: s.metadata.resourceVersion ?? "", data };
}

function startOperator(): Promise<OperatorProcess> {
  return OperatorProcess.start({
    kubeconfig: cluster.kubeconfig,
    args: ["--leader-elect", "false", "--xds-service", `tether-xds.${NS}`],
    env: { POD_NAMESPACE: NS },
  }).then((op) => {
    operators.push(op);
    return op;
  });
}

/** The certificate the xDS port presents, verified against `ca` for the Service's name. */
function servedCertificate(address: string, ca: string): Promise<X509Certificate> {
  const [host = "", port = ""] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port: Number(port), ca, servername: XDS_NAME, ALPNProtocols: ["h2"] },
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

describe("the operator's CA", () => {
  it("is created when missing and reused by a second operator; each serves its own certificate from it", async () => {
    const a = await startOperator();
    const created = await caSecret("tether-ca");
    const secret = await cluster.get("secret", "tether-ca", NS);
    expect((secret as unknown as { type: string }).type).toBe("kubernetes.io/tls");
    expect(Object.keys(created.data).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    const ca = new X509Certificate(created.data["tls.crt"] ?? "");
    expect(ca.ca).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(created.data["ca.crt"]).toBe(created.data["tls.crt"]);
    const days = (new Date(ca.validTo).getTime() - new Date(ca.validFrom).getTime()) / DAY;
    expect(Math.round(days)).toBe(365);

    const b = await startOperator();
    expect((await caSecret("tether-ca")).rv).toBe(created.rv); // read, not rewritten
    const bundle = created.data["ca.crt"] ?? "";
    const [servedA, servedB] = await Promise.all([
      servedCertificate(a.xdsAddress, bundle),
      servedCertificate(b.xdsAddress, bundle),
    ]);
    for (const served of [servedA, servedB]) {
      expect(served.checkIssued(ca)).toBe(true);
      expect(served.subjectAltName).toBe(
        `DNS:tether-xds, DNS:tether-xds.${NS}, DNS:tether-xds.${NS}.svc, DNS:${XDS_NAME}`,
      );
      const life = (new Date(served.validTo).getTime() - new Date(served.validFrom).getTime()) / DAY;
      expect(Math.round(life)).toBe(30);
    }
    // Each replica made its own key: the private key never left the process that uses it.
    expect(servedA.publicKey.export({ type: "spki", format: "der" })).not.toEqual(
      servedB.publicKey.export({ type: "spki", format: "der" }),
    );
  });

  it("replicas racing on a missing Secret end with one CA", async () => {
    for (let round = 0; round < 3; round++) {
      const name = `race-${round}`;
      const replicas = Array.from(
        { length: 3 },
        () => new CertificateAuthority({ client, namespace: NS, secretName: name, logger: log }),
      );
      const states = await Promise.all(replicas.map((r) => r.ensure()));
      const stored = await caSecret(name);
      for (const state of states) expect(state.signer.certPem).toBe(stored.data["tls.crt"]);
    }
  });

  it("rotates: successor published beside the old CA, then signing; the old one leaves the bundle at its expiry", async () => {
    let now = Date.now();
    const policy = { backdateMs: 0 };
    const authority = new CertificateAuthority({
      client,
      namespace: NS,
      secretName: "rotating",
      logger: log,
      policy,
      now: () => now,
    });
    const other = new CertificateAuthority({
      client,
      namespace: NS,
      secretName: "rotating",
      logger: log,
      policy,
      now: () => now,
    });
    const first = await authority.ensure();
    const serving = new ServingCertificate({
      authority,
      dnsNames: [XDS_NAME],
      logger: log,
      now: () => now,
      backdateMs: 0,
    });
    serving.start();
    const rotations: ServingIdentity[] = [];
    serving.onRotate((identity) => rotations.push(identity));
    const serials = (pem: string): string[] => splitPem(pem).map((c) => c.serialNumber);
    const firstSerial = new X509Certificate(first.signer.certPem).serialNumber;

    now += 250 * DAY; // past 2/3 of the year
    const published = await authority.ensure();
    const nextSerial = new X509Certificate(published.next?.certPem ?? "").serialNumber;
    const stored = await caSecret("rotating");
    expect(serials(stored.data["ca.crt"] ?? "")).toEqual([nextSerial, firstSerial]);
    expect(stored.data["tls.crt"]).toBe(first.signer.certPem); // the old CA still signs
    expect(Object.keys(stored.data)).toContain("next.key");
    // The serving certificate stays; its holders hear of the wider bundle.
    expect(rotations.map((r) => serials(r.caBundlePem))).toEqual([[nextSerial, firstSerial]]);
    expect(
      new X509Certificate(rotations[0]?.certPem ?? "").checkIssued(new X509Certificate(first.signer.certPem)),
    ).toBe(true);
    // Another replica reads the same state and writes nothing.
    await other.ensure();
    expect((await caSecret("rotating")).rv).toBe(stored.rv);

    now += 2 * DAY; // past the promotion delay
    const promoted = await authority.ensure();
    expect(new X509Certificate(promoted.signer.certPem).serialNumber).toBe(nextSerial);
    expect(serials(promoted.bundle)).toEqual([nextSerial, firstSerial]);
    // The serving certificate was reissued by the new CA at once.
    const reissued = new X509Certificate(rotations.at(-1)?.certPem ?? "");
    expect(reissued.checkIssued(new X509Certificate(promoted.signer.certPem))).toBe(true);

    now += 120 * DAY; // the first CA has expired
    const pruned = await authority.ensure();
    expect(serials(pruned.bundle)).toEqual([nextSerial]);
    expect(serials((await caSecret("rotating")).data["ca.crt"] ?? "")).toEqual([nextSerial]);
    serving.stop();
  });
});
