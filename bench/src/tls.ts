// TLS to the upstream: plain HTTP in, verified TLS (trusted CA, SNI, name check) out to an upstream
// nginx serving HTTPS, through the sidecar (UpstreamTlsContext), HAProxy (`ssl verify required`) and
// nginx (`proxy_ssl_verify on`), each with keep-alive pools and health checks over TLS where the
// product has them. "direct" is plain HTTP to the same upstream process (no proxy, no TLS): the floor.
//
//   node bench/src/tls.ts [--rounds 2] [--out FILE]
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { haproxyConfig, proxyNginxConfig, sidecarConfig, upstreamNginxConfig } from "./configs.ts";
import type { Endpoint } from "./configs.ts";
import { makeCertificates } from "./certs.ts";
import type { Certificates } from "./certs.ts";
import { BenchError, Proc, freePort, runBench, waitForPort } from "./proc.ts";
import { fixedRateTable, saturationTable } from "./report.ts";
import { REPO_ROOT, waitServing } from "./targets.ts";
import {
  FIXED_RATE,
  LOAD_CPU,
  finishRun,
  loadAverage,
  log,
  measureTargets,
  startPinned,
  type PathTarget,
} from "./routed.ts";

const SERVER_NAME = "policy.test";

/** The main bench's upstream nginx, with TLS on `tlsPorts` and plain HTTP on `plainPort`. */
async function startTlsUpstream(
  dir: string,
  tlsPorts: readonly number[],
  plainPort: number,
  certs: Certificates,
): Promise<Proc> {
  mkdirSync(join(dir, "www"), { recursive: true });
  writeFileSync(join(dir, "www", "payload"), "x".repeat(1023) + "\n");
  let conf = upstreamNginxConfig(dir, [...tlsPorts, plainPort]);
  for (const port of tlsPorts)
    conf = conf.replace(`listen 127.0.0.1:${port};`, `listen 127.0.0.1:${port} ssl;`);
  conf = conf.replace(
    `    root ${dir}/www;\n`,
    `    root ${dir}/www;\n    ssl_certificate ${certs.cert};\n    ssl_certificate_key ${certs.key};\n` +
      `    ssl_session_cache shared:bench:1m;\n`,
  );
  writeFileSync(join(dir, "upstream.conf"), conf);
  const proc = new Proc({
    name: "upstream nginx (tls)",
    command: "nginx",
    args: ["-c", join(dir, "upstream.conf"), "-e", join(dir, "upstream-error.log"), "-p", dir],
    cpus: LOAD_CPU,
  });
  for (const port of [...tlsPorts, plainPort]) await waitForPort("127.0.0.1", port, 15_000, proc);
  return proc;
}

function sidecarTls(
  listenPort: number,
  adminPort: number,
  upstreams: readonly Endpoint[],
  certs: Certificates,
): string {
  const base = sidecarConfig({ listenPort, adminPort, upstreams });
  const transport = `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${SERVER_NAME}
          common_tls_context:
            validation_context:
              trusted_ca: { filename: ${certs.ca} }
              match_typed_subject_alt_names:
                - san_type: DNS
                  matcher: { exact: ${SERVER_NAME} }
`;
  if (!base.includes("      health_checks:\n"))
    throw new BenchError("TETHER_ERR_BENCH_CONFIG", "sidecar config shape changed");
  return base.replace("      health_checks:\n", transport + "      health_checks:\n");
}

function haproxyTls(listenPort: number, upstreams: readonly Endpoint[], certs: Certificates): string {
  let conf = haproxyConfig(listenPort, upstreams);
  upstreams.forEach((u, i) => {
    conf = conf.replace(
      `  server s${i + 1} ${u.host}:${u.port} check\n`,
      `  server s${i + 1} ${u.host}:${u.port} check check-ssl ssl verify required ca-file ${certs.ca} ` +
        `sni str(${SERVER_NAME}) verifyhost ${SERVER_NAME}\n`,
    );
  });
  return conf;
}

function nginxTls(
  dir: string,
  listenPort: number,
  upstreams: readonly Endpoint[],
  certs: Certificates,
): string {
  return proxyNginxConfig(dir, listenPort, upstreams).replace(
    "      proxy_pass http://pool;\n",
    `      proxy_pass https://pool;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${certs.ca};
      proxy_ssl_server_name on;
      proxy_ssl_name ${SERVER_NAME};
      proxy_ssl_session_reuse on;
`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "2" }, out: { type: "string" } },
  });
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(os.tmpdir(), "tether-bench-tls-"));
  const started: Proc[] = [];
  const loadAtStart = loadAverage();
  const startedAt = Date.now();
  let tables: string;
  try {
    const certs = makeCertificates(dir, SERVER_NAME);
    const tlsPorts = [await freePort(), await freePort()];
    const plainPort = await freePort();
    started.push(await startTlsUpstream(dir, tlsPorts, plainPort, certs));
    const upstreams = tlsPorts.map((port) => ({ host: "127.0.0.1", port }));
    const [sp, sa, hp, np] = [await freePort(), await freePort(), await freePort(), await freePort()];
    writeFileSync(join(dir, "tls-sidecar.yaml"), sidecarTls(sp, sa, upstreams, certs));
    writeFileSync(join(dir, "tls-haproxy.cfg"), haproxyTls(hp, upstreams, certs));
    writeFileSync(join(dir, "tls-nginx.conf"), nginxTls(dir, np, upstreams, certs));
    const sidecar = await startPinned(
      "tether-sidecar",
      process.execPath,
      [`${REPO_ROOT}sidecar/bin/tether-sidecar.js`, "--config", join(dir, "tls-sidecar.yaml")],
      sp,
    );
    started.push(sidecar);
    const haproxy = await startPinned("haproxy", "haproxy", ["-f", join(dir, "tls-haproxy.cfg"), "-db"], hp);
    started.push(haproxy);
    const nginx = await startPinned(
      "nginx proxy",
      "nginx",
      ["-c", join(dir, "tls-nginx.conf"), "-e", join(dir, "proxy-nginx-error.log"), "-p", dir],
      np,
    );
    started.push(nginx);
    const targets: PathTarget[] = [
      { name: "direct", url: `http://127.0.0.1:${plainPort}/payload`, proc: null },
      { name: "tether-sidecar", url: `http://127.0.0.1:${sp}/payload`, proc: sidecar },
      { name: "haproxy", url: `http://127.0.0.1:${hp}/payload`, proc: haproxy },
      { name: "nginx", url: `http://127.0.0.1:${np}/payload`, proc: nginx },
    ];
    for (const t of targets) await waitServing(new URL(t.url).origin, "/payload", 15_000);
    log("TLS to the upstream: GET /payload");
    const m = await measureTargets(targets, rounds);
    tables = `${saturationTable(m)}\n\n${fixedRateTable(m, FIXED_RATE)}\n`;
  } finally {
    await Promise.all(started.map((proc) => proc.kill()));
  }
  finishRun({
    title: "TLS to the upstream",
    script: "tls.ts",
    rounds,
    startedAt,
    loadAtStart,
    body: [tables],
    out: values.out,
    dir,
  });
}

if (import.meta.main) runBench(main);
