/**
 * The xDS server over TLS with certificates from the operator's PKI, and the ADS client a sidecar
 * runs, over real sockets: a client trusting the CA gets config; one trusting another CA, one
 * expecting another name and a plaintext one get nothing; a reissued certificate (even from a new
 * CA) keeps the open streams and is what new handshakes see; the client re-reads its CA file at
 * every reconnect.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { X509Certificate } from "node:crypto";
import {
  AdsClient,
  AdsServer,
  type AdsClientTls,
  type LoggerLike,
  type ResourceJson,
  type Snapshot,
} from "@tether/xds";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, type CertifiedKey } from "../src/pki/index.ts";
import { waitFor } from "./helpers/wait.ts";

const DAY = 86_400_000;
const NAME = "tether-xds.tether-system.svc.cluster.local";
const GROUP = "default/agent/web";

interface LogLine {
  level: string;
  fields: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLog(): {
  log: LoggerLike;
  lines: LogLine[];
} {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (fields: object, msg?: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, msg });
    };
  return { log: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

const silent = { debug(): void {}, info(): void {}, warn(): void {}, error(): void {} };

function validity(): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) };
}

function snapshot(version: string, clusterNames: string[]): Snapshot {
  const clusters = new Map<string, ResourceJson>(
    clusterNames.map((name) => [name, { name, type: "STATIC", connect_timeout: "1s" }]),
  );
  return {
    version,
    resources: { cluster: clusters, endpoint: new Map(), listener: new Map(), route: new Map() },
  };
}

let dir: string;
const ca = createCa("tether-operator CA", validity());
const leaf = issueServing(ca, ["tether-xds", NAME], validity());
let server: AdsServer;
let port: number;
const clients: AdsClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tether-xds-tls-"));
  server = new AdsServer({ host: "127.0.0.1", port: 0, log: silent, tls: leaf });
  port = (await server.start()).port;
  server.setSnapshot(GROUP, snapshot("v1", ["a"]));
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.stop();
});

function caFile(name: string, ...cas: CertifiedKey[]): string {
  const file = join(dir, name);
  writeFileSync(file, cas.map((c) => c.certPem).join(""));
  return file;
}

/** A sidecar's ADS client; what it accepted of CDS, its connection states and its log. */
function startClient(tls: AdsClientTls | undefined): {
  clusters: () => string[] | undefined;
  states: boolean[];
  lines: LogLine[];
} {
  let clusters: string[] | undefined;
  const states: boolean[] = [];
  const { log, lines } = recordingLog();
  const client = new AdsClient(
    {
      target: { host: "127.0.0.1", port },
      node: { id: "default/web-0", cluster: GROUP },
      backoff: { baseMs: 20, maxMs: 100 },
      log,
      ...(tls === undefined ? {} : { tls }),
    },
    {
      onResources: (type, _version, resources) => {
        if (type === "cluster") clusters = [...resources.keys()].sort();
        return Promise.resolve(undefined);
      },
      onConnectionState: (connected) => {
        states.push(connected);
      },
    },
  );
  clients.push(client);
  client.start();
  return { clusters: () => clusters, states, lines };
}

/** The reasons the client gave for its failed connects, once it has tried `n` times. */
async function failures(lines: LogLine[], n = 2): Promise<string[]> {
  return waitFor(
    `${n} failed connects`,
    () => {
      const reasons = lines
        .filter((l) => l.msg === "xDS stream closed; reconnecting")
        .map((l) => String(l.fields["reason"]));
      return reasons.length >= n ? reasons : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
}

/** The serial number of the certificate a fresh TLS handshake sees. */
function presentedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: "127.0.0.1", port, servername: NAME, rejectUnauthorized: false, ALPNProtocols: ["h2"] },
      () => {
        const serial = socket.getPeerX509Certificate()?.serialNumber ?? "";
        socket.destroy();
        resolve(serial);
      },
    );
    socket.on("error", reject);
  });
}

const serial = (c: CertifiedKey): string => new X509Certificate(c.certPem).serialNumber;

describe("xDS over TLS", () => {
  it("a client trusting the operator's CA connects and receives config", async () => {
    const client = startClient({ caFile: caFile("ca.crt", ca), sni: NAME, verifyName: NAME });
    expect(await waitFor("CDS", client.clusters)).toEqual(["a"]);
  });

  it("a client trusting another CA is refused, and so is one expecting another name", async () => {
    const stranger = createCa("stranger", validity());
    const untrusting = startClient({ caFile: caFile("stranger.crt", stranger), sni: NAME, verifyName: NAME });
    const wrongName = startClient({
      caFile: caFile("ca.crt", ca),
      sni: NAME,
      verifyName: "tether-xds.elsewhere.svc.cluster.local",
    });
    expect((await failures(untrusting.lines))[0]).toMatch(
      /unable to verify the first certificate|UNABLE_TO_VERIFY/i,
    );
    expect((await failures(wrongName.lines))[0]).toMatch(/Hostname\/IP does not match/);
    expect(untrusting.clusters()).toBeUndefined();
    expect(wrongName.clusters()).toBeUndefined();
    expect(untrusting.states).not.toContain(true);
  });

  it("a plaintext client is refused", async () => {
    const plain = startClient(undefined);
    const reasons = await failures(plain.lines);
    expect(plain.clusters()).toBeUndefined();
    expect(plain.states).not.toContain(true);
    expect(reasons[0]).not.toBe("");
  });

  it("re-reads its CA file at every reconnect: a bundle fixed on disk applies without a restart", async () => {
    const stranger = createCa("stranger", validity());
    const file = caFile("rotating.crt", stranger);
    const client = startClient({ caFile: file, sni: NAME, verifyName: NAME });
    await failures(client.lines);
    writeFileSync(file, stranger.certPem + ca.certPem); // the bundle as a rotation publishes it
    expect(await waitFor("CDS after the bundle changed", client.clusters)).toEqual(["a"]);
  });

  it("a reissued certificate keeps the open streams and is what new handshakes see", async () => {
    const next = createCa("tether-operator CA (next)", validity());
    const bundle = caFile("bundle.crt", ca, next);
    const open = startClient({ caFile: bundle, sni: NAME, verifyName: NAME });
    expect(await waitFor("CDS", open.clusters)).toEqual(["a"]);
    expect(await presentedSerial()).toBe(serial(leaf));

    const reissued = issueServing(next, ["tether-xds", NAME], validity());
    server.setTlsIdentity(reissued);
    expect(await presentedSerial()).toBe(serial(reissued));
    // The stream opened before the swap still gets pushes, without reconnecting.
    server.setSnapshot(GROUP, snapshot("v2", ["a", "b"]));
    expect(
      await waitFor("the push after the swap", () =>
        open.clusters()?.length === 2 ? open.clusters() : undefined,
      ),
    ).toEqual(["a", "b"]);
    expect(open.states).toEqual([true]);
    // A new client trusting only the old CA now fails; one trusting the new one connects.
    const oldOnly = startClient({ caFile: caFile("old.crt", ca), sni: NAME, verifyName: NAME });
    const newOnly = startClient({ caFile: caFile("new.crt", next), sni: NAME, verifyName: NAME });
    expect(await waitFor("CDS with the new CA", newOnly.clusters)).toEqual(["a", "b"]);
    await failures(oldOnly.lines);
    expect(oldOnly.clusters()).toBeUndefined();
  });
});
