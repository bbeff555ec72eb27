// A DNS-discovered cluster whose servers are replaced one by one behind a real DNS server (CoreDNS,
// built for the local cluster by e2e/k8s/build.sh), as a rolling restart of a Deployment behind a
// headless Service looks to the sidecar: a new server comes up at a new address and joins the
// answer, the old one leaves the answer and gets SIGTERM. The sidecar refreshes DNS only every 5 s
// here (the answer's TTL too), so without re-resolving on the old server's going-away sign, the
// last replacement would stay unknown for seconds and requests would wait for it.
//
// Skipped, with the reason in its name, when CoreDNS has not been built.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Pool, request } from "undici";
import {
  bootstrapYaml,
  exited,
  freePort,
  httpListenerYaml,
  PolicyServer,
  Sidecar,
  waitFor,
} from "./support/harness.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where e2e/k8s/build.sh caches CoreDNS (the same rule as the script: TETHER_CACHE, XDG_CACHE_HOME). */
function corednsPath(): string {
  const env = readFileSync(path.resolve(here, "../../e2e/k8s/versions.env"), "utf8");
  const version = (name: string): string => new RegExp(`^${name}=(\\S+)$`, "m").exec(env)?.[1] ?? "";
  const cache =
    process.env["TETHER_CACHE"] ??
    path.join(process.env["XDG_CACHE_HOME"] ?? path.join(os.homedir(), ".cache"), "tether");
  return path.join(
    cache,
    "k8s",
    `${version("KUBERNETES_VERSION")}-etcd-${version("ETCD_VERSION")}`,
    "bin",
    "coredns",
  );
}

const COREDNS = corednsPath();
const unavailable = existsSync(COREDNS) ? undefined : `${COREDNS} not built (bash e2e/k8s/build.sh coredns)`;
const NAME = "policy.tether.test";
const SERVER_PORT_BASE = 18_000;
/** No request through the rollout may take longer. */
const MAX_LATENCY_MS = 1000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class Dns {
  readonly port: number;
  private readonly hostsFile: string;
  private readonly resolver = new Resolver({ timeout: 500, tries: 1 });

  constructor(port: number, dir: string) {
    this.port = port;
    this.hostsFile = path.join(dir, "hosts");
    this.resolver.setServers([`127.0.0.1:${port}`]);
  }

  async start(addresses: readonly string[]): Promise<void> {
    this.write(addresses);
    const corefile = path.join(path.dirname(this.hostsFile), "Corefile");
    // TTL 5 s, as CoreDNS serves a Kubernetes Service; the file is re-read every 100 ms.
    writeFileSync(
      corefile,
      `.:${this.port} {\n  bind 127.0.0.1\n  hosts ${this.hostsFile} {\n    ttl 5\n    reload 100ms\n  }\n}\n`,
    );
    const proc = spawn(COREDNS, ["-conf", corefile], { stdio: ["ignore", "ignore", "inherit"] });
    cleanups.push(async () => {
      proc.kill("SIGKILL");
      await exited(proc);
    });
    await this.answers(addresses);
  }

  write(addresses: readonly string[]): void {
    writeFileSync(this.hostsFile, addresses.map((a) => `${a} ${NAME}\n`).join(""));
  }

  /** Waits until the server answers exactly `addresses`. */
  async answers(addresses: readonly string[]): Promise<void> {
    const want = [...addresses].sort().join(",");
    await waitFor(`CoreDNS to answer ${want}`, async () => {
      const got = await this.resolver.resolve4(NAME);
      return got.sort().join(",") === want;
    });
  }
}

interface Sample {
  readonly ms: number;
  readonly error: string | undefined;
}

describe(`a STRICT_DNS cluster through a rolling replacement of its servers${unavailable === undefined ? "" : ` — skipped: ${unavailable}`}`, () => {
  it.skipIf(unavailable !== undefined)(
    "re-resolves on the old servers' going-away signs: no request fails or waits a second",
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "tether-dns-"));
      const [dnsPort, listen, admin] = await Promise.all([freePort(), freePort(), freePort()]);
      const serverPort = SERVER_PORT_BASE + (process.pid % 1000);
      const servers = new Map<string, PolicyServer>();
      const startServer = async (address: string): Promise<void> => {
        const s = await new PolicyServer(serverPort, address, { host: address }).start();
        servers.set(address, s);
        cleanups.push(() => s.kill());
      };
      await startServer("127.0.0.2");
      await startServer("127.0.0.3");
      const dns = new Dns(dnsPort, dir);
      await dns.start(["127.0.0.2", "127.0.0.3"]);

      const cluster = `    - name: policy
      type: STRICT_DNS
      connect_timeout: 1s
      dns_lookup_family: V4_ONLY
      dns_refresh_rate: 5s
      respect_dns_ttl: true
      typed_dns_resolver_config:
        name: envoy.network.dns_resolver.cares
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
          resolvers: [{ socket_address: { address: 127.0.0.1, port_value: ${dnsPort} } }]
      load_assignment:
        cluster_name: policy
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: ${NAME}, port_value: ${serverPort} } } }
      health_checks:
        - timeout: 0.5s
          interval: 1s
          no_traffic_interval: 1s
          unhealthy_threshold: 2
          healthy_threshold: 1
          http_health_check: { path: /healthz }
`;
      const route = `                      - match: { prefix: "/" }
                        route:
                          cluster: policy
                          timeout: 15s
                          retry_policy:
                            retry_on: connect-failure,reset,5xx
                            num_retries: 10
                            retry_back_off: { base_interval: 0.05s, max_interval: 0.25s }`;
      const sidecar = new Sidecar(
        admin,
        Sidecar.writeConfig(bootstrapYaml(admin, httpListenerYaml(listen, [route]), cluster), dir),
      );
      cleanups.push(() => sidecar.stop());
      await sidecar.start();
      const hostsInRotation = async (): Promise<string> => {
        const text = await (await request(`http://127.0.0.1:${admin}/clusters`)).body.text();
        return text
          .split("\n")
          .filter((l) => l.startsWith("policy::") && l.endsWith("::health_flags::healthy"))
          .map((l) => l.split("::")[1]?.split(":")[0] ?? "")
          .sort()
          .join(",");
      };
      await waitFor(
        "both servers in rotation",
        async () => (await hostsInRotation()) === "127.0.0.2,127.0.0.3",
      );

      // Four clients, each sending its next request as soon as the last one answered.
      const client = new Pool(`http://127.0.0.1:${listen}`, { connections: 4 });
      cleanups.push(() => client.close());
      const samples: Sample[] = [];
      let running = true;
      const loop = async (): Promise<void> => {
        while (running) {
          const t0 = performance.now();
          let error: string | undefined;
          try {
            const res = await client.request({ path: "/authorize?resource=/app&action=GET", method: "GET" });
            const body = await res.body.text();
            if (res.statusCode !== 200) error = `${res.statusCode} ${body.slice(0, 120)}`;
          } catch (err) {
            error = (err as Error).message;
          }
          samples.push({ ms: performance.now() - t0, error });
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      const clients = Array.from({ length: 4 }, () => loop());

      // Replace .2 by .4, then .3 by .5: the new server joins the answer, the old one leaves it and is
      // told to stop, as the endpoints controller and the kubelet do during a rollout.
      const replace = async (old: string, next: string, answer: string[]): Promise<void> => {
        await startServer(next);
        dns.write(answer);
        await dns.answers(answer);
        await servers.get(old)?.terminate();
      };
      await new Promise((r) => setTimeout(r, 500));
      await replace("127.0.0.2", "127.0.0.4", ["127.0.0.3", "127.0.0.4"]);
      await new Promise((r) => setTimeout(r, 1000));
      await replace("127.0.0.3", "127.0.0.5", ["127.0.0.4", "127.0.0.5"]);
      await waitFor(
        "the replacements in rotation",
        async () => (await hostsInRotation()) === "127.0.0.4,127.0.0.5",
        4000,
      );
      await new Promise((r) => setTimeout(r, 500));
      running = false;
      await Promise.all(clients);

      const failed = samples.filter((s) => s.error !== undefined);
      const slow = samples.filter((s) => s.ms > MAX_LATENCY_MS);
      const max = Math.max(...samples.map((s) => s.ms));
      const summary = `${samples.length} requests, ${failed.length} failed, ${slow.length} over ${MAX_LATENCY_MS} ms, max ${Math.round(max)} ms`;
      expect(samples.length, summary).toBeGreaterThan(100);
      expect(
        failed.map((s) => s.error),
        summary,
      ).toEqual([]);
      expect(slow.length, summary).toBe(0);
      const m = await sidecar.metrics();
      expect(
        m.get('tether_dns_early_resolve_total{envoy_cluster_name="policy",reason="going_away"}'),
      ).toBeGreaterThan(0);
      expect(m.get('envoy_cluster_update_failure{envoy_cluster_name="policy"}')).toBe(0);
    },
  );
});
