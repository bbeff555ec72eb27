/**
 * Our own Prometheus process for tests: Debian's `prometheus` binary with a generated config, a
 * fresh data directory in a temp dir, listening on a free loopback port. The distribution's
 * service is not used. stop() kills it and removes the directory; the process is also killed when
 * the test process exits (processes.ts).
 */
import { accessSync, constants } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { parse } from "yaml";
import { freePort } from "../demo/demo-config.ts";
import { ChildHandle } from "../demo/processes.ts";
import { PrometheusClient, pollUntil } from "./client.ts";
import { PrometheusError, prometheusConfig, type ScrapeJob } from "./config.ts";

export interface PrometheusOptions {
  readonly jobs: readonly ScrapeJob[];
  /** Rule files' contents, by file name (`*.yml`), loaded from the start. See also loadRules(). */
  readonly ruleFiles?: Readonly<Record<string, string>>;
  readonly scrapeIntervalSeconds?: number;
  readonly evaluationIntervalSeconds?: number;
  /** The prometheus binary; default `prometheus` from PATH, else /usr/bin/prometheus. */
  readonly binary?: string;
  /** Deadline for /-/ready. Default 30 s. */
  readonly readyTimeoutMs?: number;
}

export interface RunningPrometheus {
  readonly client: PrometheusClient;
  readonly origin: string;
  readonly dir: string;
  readonly child: ChildHandle;
  /**
   * Adds (or replaces) rule files and reloads Prometheus (SIGHUP); resolves once the rules API lists
   * every group of the new files. Lets a test start evaluating alerts only once targets are scraped.
   */
  loadRules(ruleFiles: Readonly<Record<string, string>>, timeoutMs?: number): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s), then removes the data directory. */
  stop(): Promise<void>;
}

/** The prometheus binary: `binary`, or the first `prometheus` on PATH, or /usr/bin/prometheus. */
export function findPrometheus(binary?: string): string {
  const candidates =
    binary !== undefined
      ? [binary]
      : [
          ...(process.env["PATH"] ?? "").split(delimiter).map((d) => join(d, "prometheus")),
          "/usr/bin/prometheus",
        ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new PrometheusError(
    "TETHER_ERR_PROMETHEUS_MISSING",
    `no prometheus binary (${binary ?? "PATH, /usr/bin/prometheus"}): install Debian's package (apt-get install prometheus) and stop its service`,
  );
}

/** Starts Prometheus and resolves once /-/ready answers; throws with its log if it does not. */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = findPrometheus(options.binary);
  checkRuleFileNames(options.ruleFiles ?? {});
  const dir = await mkdtemp(join(tmpdir(), "tether-prometheus-"));
  const configPath = join(dir, "prometheus.yml");
  const rulesDir = join(dir, "rules");
  try {
    await mkdir(rulesDir);
    await writeRuleFiles(rulesDir, options.ruleFiles ?? {});
    await writeFile(
      configPath,
      prometheusConfig({
        jobs: options.jobs,
        // A glob: files added later are picked up by loadRules()' reload.
        ruleFiles: [join(rulesDir, "*.yml")],
        ...(options.scrapeIntervalSeconds === undefined
          ? {}
          : { scrapeIntervalSeconds: options.scrapeIntervalSeconds }),
        ...(options.evaluationIntervalSeconds === undefined
          ? {}
          : { evaluationIntervalSeconds: options.evaluationIntervalSeconds }),
      }),
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = new ChildHandle({
    name: "prometheus",
    command: binary,
    args: [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--storage.tsdb.retention.time=1h",
      "--log.level=warn",
    ],
    cwd: dir,
  });
  const client = new PrometheusClient(origin);
  const stop = async (): Promise<void> => {
    await child.stop(5_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await pollUntil(
      "prometheus /-/ready",
      async () => {
        if (!child.running) {
          throw new PrometheusError("TETHER_ERR_PROMETHEUS_EXITED", `prometheus exited:\n${child.output()}`);
        }
        return client.ready();
      },
      options.readyTimeoutMs ?? 30_000,
      100,
    );
  } catch (error) {
    const log = child.output();
    await stop();
    throw new PrometheusError(
      "TETHER_ERR_PROMETHEUS_START",
      `${error instanceof Error ? error.message : String(error)}\n${log}`,
    );
  }
  const loadRules = async (
    ruleFiles: Readonly<Record<string, string>>,
    timeoutMs = 20_000,
  ): Promise<void> => {
    checkRuleFileNames(ruleFiles);
    await writeRuleFiles(rulesDir, ruleFiles);
    const wanted = Object.values(ruleFiles).flatMap((text) =>
      ((parse(text) as { groups?: { name?: string }[] } | null)?.groups ?? []).map((g) => g.name ?? ""),
    );
    child.process.kill("SIGHUP");
    await pollUntil(
      `prometheus to load the rule groups ${wanted.join(", ")}`,
      async () => {
        const loaded = new Set((await client.rules()).map((g) => g.name));
        return wanted.every((name) => loaded.has(name));
      },
      timeoutMs,
      100,
    );
  };
  return { client, origin, dir, child, stop, loadRules };
}

function checkRuleFileNames(ruleFiles: Readonly<Record<string, string>>): void {
  for (const name of Object.keys(ruleFiles)) {
    if (!/^[\w.-]+\.yml$/.test(name)) {
      throw new PrometheusError(
        "TETHER_ERR_PROMETHEUS_CONFIG",
        `ruleFiles.${name}: expected a plain file name ending in .yml`,
      );
    }
  }
}

async function writeRuleFiles(dir: string, ruleFiles: Readonly<Record<string, string>>): Promise<void> {
  for (const [name, text] of Object.entries(ruleFiles)) await writeFile(join(dir, name), text);
}
