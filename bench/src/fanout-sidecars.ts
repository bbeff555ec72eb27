/**
 * The cross-check of the light ADS clients: real sidecar processes (`sidecar/bin/tether-sidecar.js`)
 * with a bootstrap that has only `dynamic_resources` and the `tether_xds` cluster, so everything they
 * serve comes from the operator. A sidecar has an EndpointSlice change once its admin `/clusters`
 * lists the new host; that is polled every POLL_MS, so each sample is late by up to that much.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BenchError, freePort, pause, Proc, waitForPort } from "./proc.ts";

const POLL_MS = 10;

export interface SidecarMember {
  readonly nodeId: string;
  readonly group: string;
}

/** TLS to the operator as its rendered bootstraps say: the CA bundle file and the Service's name. */
export interface SidecarXdsTls {
  readonly caFile: string;
  readonly name: string;
}

function tlsYaml(tls: SidecarXdsTls | undefined): string {
  if (tls === undefined) return "";
  return `
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${tls.name}
          common_tls_context:
            validation_context:
              trusted_ca: { filename: ${tls.caFile} }
              match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: ${tls.name} } }]`;
}

/** A sidecar bootstrap with only the admin and the ADS cluster: everything else comes over ADS. */
export function adsBootstrap(
  member: SidecarMember,
  adminPort: number,
  xdsPort: number,
  tls: SidecarXdsTls | undefined,
): string {
  return `node: { id: ${member.nodeId}, cluster: ${member.group} }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${String(adminPort)} } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: tether_xds } }]
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
    - name: tether_xds
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }${tlsYaml(tls)}
      load_assignment:
        cluster_name: tether_xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${String(xdsPort)} } } } }] }]
`;
}

export class SidecarFleet {
  private readonly sidecars: { proc: Proc; adminPort: number }[] = [];
  private readonly edsCluster: string;

  constructor(edsCluster: string) {
    this.edsCluster = edsCluster;
  }

  get pids(): number[] {
    return this.sidecars.map((s) => s.proc.pid);
  }

  async start(
    repo: string,
    dir: string,
    members: readonly SidecarMember[],
    xdsPort: number,
    tls?: SidecarXdsTls,
  ): Promise<void> {
    for (const [i, member] of members.entries()) {
      const adminPort = await freePort();
      const config = join(dir, `sidecar-${String(i)}.yaml`);
      writeFileSync(config, adsBootstrap(member, adminPort, xdsPort, tls));
      const proc = new Proc({
        name: `tether-sidecar ${member.nodeId}`,
        command: process.execPath,
        args: [join(repo, "sidecar", "bin", "tether-sidecar.js"), "--config", config],
        cwd: repo,
      });
      this.sidecars.push({ proc, adminPort });
      await waitForPort("127.0.0.1", adminPort, 20_000, proc);
    }
  }

  /** Resolves with when (performance.now()) each sidecar's /clusters first listed `host` ("ip:port"). */
  async expect(host: string, timeoutMs: number): Promise<number[]> {
    const deadline = performance.now() + timeoutMs;
    return Promise.all(
      this.sidecars.map(async ({ proc, adminPort }) => {
        while (performance.now() < deadline) {
          if (await this.lists(adminPort, host)) return performance.now();
          await pause(POLL_MS);
        }
        throw new BenchError(
          "TETHER_ERR_BENCH_TIMEOUT",
          `${proc.name}: ${host} not in /clusters within ${String(timeoutMs)} ms`,
        );
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.sidecars.map((s) => s.proc.stop()));
    this.sidecars.length = 0;
  }

  private async lists(adminPort: number, host: string): Promise<boolean> {
    try {
      const response = await fetch(`http://127.0.0.1:${String(adminPort)}/clusters`, {
        signal: AbortSignal.timeout(2_000),
      });
      return (await response.text()).includes(`${this.edsCluster}::${host}::`);
    } catch {
      return false;
    }
  }
}
