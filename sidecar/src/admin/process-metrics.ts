// The process and Node.js series Prometheus clients export by default (prom-client's names), read
// straight from /proc and Node: prom-client with its default collectors cost ~20 MB of RSS.
import { readdirSync, readFileSync } from "node:fs";
import { LoopDelay } from "./loop-delay.ts";

function procStatusBytes(status: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length - 1; // minus the one readdir itself opened
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  const m = /^Max open files\s+(\d+)/m.exec(readOr("/proc/self/limits"));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Collects between scrapes: the event loop delay histogram (a 50 ms timer: 20 wake-ups a second idle, not 100). */
export class ProcessMetrics {
  private readonly loopDelay = new LoopDelay();
  // Taken when the admin server starts, not at import: a start-up snapshot evaluates modules at build time.
  private readonly startTimeSeconds = Math.round((Date.now() - process.uptime() * 1000) / 1000);

  stop(): void {
    this.loopDelay.stop();
  }

  render(): string {
    const lines: string[] = [];
    const metric = (
      name: string,
      type: "counter" | "gauge",
      value: number | undefined,
      help: string,
    ): void => {
      if (value === undefined || !Number.isFinite(value)) return;
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
    };
    const cpu = process.cpuUsage();
    metric(
      "process_cpu_user_seconds_total",
      "counter",
      cpu.user / 1e6,
      "Total user CPU time spent in seconds.",
    );
    metric(
      "process_cpu_system_seconds_total",
      "counter",
      cpu.system / 1e6,
      "Total system CPU time spent in seconds.",
    );
    metric(
      "process_cpu_seconds_total",
      "counter",
      (cpu.user + cpu.system) / 1e6,
      "Total user and system CPU time spent in seconds.",
    );
    metric(
      "process_start_time_seconds",
      "gauge",
      this.startTimeSeconds,
      "Start time of the process since unix epoch in seconds.",
    );
    const status = readOr("/proc/self/status");
    metric(
      "process_resident_memory_bytes",
      "gauge",
      procStatusBytes(status, "VmRSS") ?? process.memoryUsage.rss(),
      "Resident memory size in bytes.",
    );
    metric(
      "process_virtual_memory_bytes",
      "gauge",
      procStatusBytes(status, "VmSize"),
      "Virtual memory size in bytes.",
    );
    metric("process_heap_bytes", "gauge", procStatusBytes(status, "VmData"), "Process heap size in bytes.");
    metric("process_open_fds", "gauge", openFds(), "Number of open file descriptors.");
    metric("process_max_fds", "gauge", maxFds(), "Maximum number of open file descriptors.");
    const heap = process.memoryUsage();
    metric(
      "nodejs_heap_size_total_bytes",
      "gauge",
      heap.heapTotal,
      "Process heap size from Node.js in bytes.",
    );
    metric(
      "nodejs_heap_size_used_bytes",
      "gauge",
      heap.heapUsed,
      "Process heap size used from Node.js in bytes.",
    );
    metric("nodejs_external_memory_bytes", "gauge", heap.external, "Node.js external memory size in bytes.");
    metric(
      "nodejs_active_handles_total",
      "gauge",
      process.getActiveResourcesInfo().length,
      "Number of active libuv handles and requests.",
    );
    const d = this.loopDelay.histogram;
    metric(
      "nodejs_eventloop_lag_min_seconds",
      "gauge",
      d.min / 1e9,
      "The minimum recorded event loop delay.",
    );
    metric(
      "nodejs_eventloop_lag_max_seconds",
      "gauge",
      d.max / 1e9,
      "The maximum recorded event loop delay.",
    );
    metric(
      "nodejs_eventloop_lag_mean_seconds",
      "gauge",
      d.mean / 1e9,
      "The mean of the recorded event loop delays.",
    );
    metric(
      "nodejs_eventloop_lag_p50_seconds",
      "gauge",
      d.percentile(50) / 1e9,
      "The 50th percentile of the recorded event loop delays.",
    );
    metric(
      "nodejs_eventloop_lag_p99_seconds",
      "gauge",
      d.percentile(99) / 1e9,
      "The 99th percentile of the recorded event loop delays.",
    );
    lines.push(
      "# HELP nodejs_version_info Node.js version info.",
      "# TYPE nodejs_version_info gauge",
      `nodejs_version_info{version="${process.version}"} 1`,
    );
    return lines.join("\n") + "\n";
  }
}
