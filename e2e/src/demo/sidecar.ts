// The built tether-sidecar as a child process, for the demo and e2e tests.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { ChildHandle, ProcessError } from "./processes.ts";

/** The repository root (this file sits in e2e/src/demo or e2e/dist/demo). */
export function repoRoot(): string {
  return fileURLToPath(new URL("../../../", import.meta.url));
}

export interface SidecarOptions {
  readonly configPath: string;
  /** Admin address from the config, e.g. { host: "127.0.0.1", port: 9901 }. */
  readonly admin: { readonly host: string; readonly port: number };
  readonly cpus?: string;
  /** Deadline for /ready to answer 200. Default 15 s. */
  readonly readyTimeoutMs?: number;
  readonly extraArgs?: readonly string[];
}

export class SidecarProcess {
  readonly options: SidecarOptions;
  private child: ChildHandle | null = null;

  constructor(options: SidecarOptions) {
    this.options = options;
  }

  get adminOrigin(): string {
    return `http://${this.options.admin.host}:${this.options.admin.port}`;
  }

  get handle(): ChildHandle | null {
    return this.child;
  }

  /** Starts the sidecar and resolves once its admin /ready answers 200. */
  async start(): Promise<void> {
    const bin = `${repoRoot()}sidecar/bin/tether-sidecar.js`;
    const main = `${repoRoot()}sidecar/dist/bundle/sidecar.blob`;
    if (!existsSync(main)) {
      throw new ProcessError(
        "TETHER_ERR_SIDECAR_NOT_BUILT",
        `${main} does not exist: run \`npm run build\` first`,
      );
    }
    const child = new ChildHandle({
      name: "tether-sidecar",
      command: process.execPath,
      args: [bin, "--config", this.options.configPath, ...(this.options.extraArgs ?? [])],
      cwd: repoRoot(),
      ...(this.options.cpus === undefined ? {} : { cpus: this.options.cpus }),
    });
    this.child = child;
    await this.waitReady(child, this.options.readyTimeoutMs ?? 15_000);
  }

  async stop(graceMs = 5000): Promise<void> {
    await this.child?.stop(graceMs);
  }

  async kill(): Promise<void> {
    await this.child?.kill();
  }

  /** The Prometheus text from /stats/prometheus. */
  async prometheus(): Promise<string> {
    const response = await request(`${this.adminOrigin}/stats/prometheus`, {
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    return response.body.text();
  }

  private async waitReady(child: ChildHandle, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = "no answer yet";
    while (performance.now() < deadline) {
      if (!child.running) {
        throw new ProcessError(
          "TETHER_ERR_SIDECAR_EXITED",
          `tether-sidecar exited during start-up\n${child.output()}`,
        );
      }
      try {
        const response = await request(`${this.adminOrigin}/ready`, {
          headersTimeout: 1000,
          bodyTimeout: 1000,
        });
        const body = await response.body.text();
        if (response.statusCode === 200) return;
        last = `/ready answered ${response.statusCode}: ${body.slice(0, 200)}`;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      await pause(50);
    }
    await child.kill();
    throw new ProcessError(
      "TETHER_ERR_SIDECAR_NOT_READY",
      `tether-sidecar not ready within ${timeoutMs} ms (${last})\n${child.output()}`,
    );
  }
}

/** One poll interval of a deadline-bounded readiness loop. */
async function pause(ms: number): Promise<void> {
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
}

/** Sums the samples of a Prometheus metric (all label sets) in exposition text. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}
