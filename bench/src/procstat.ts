// CPU time and memory of a process, read from /proc (Linux).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Clock ticks per second for /proc/<pid>/stat times. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds used so far by the process (all its threads). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; fields after the closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the paren: state(3) ppid(4) … utime(14) stime(15) → indexes 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export interface Memory {
  /** Resident set size now, MiB. */
  readonly rssMb: number;
  /** Peak resident set size since start, MiB. */
  readonly hwmMb: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** Measures a process's CPU use (in cores) and largest RSS while `work` runs. */
export async function measureDuring<T>(
  pid: number | null,
  work: () => Promise<T>,
): Promise<{ result: T; cpuCores: number; maxRssMb: number }> {
  if (pid === null) return { result: await work(), cpuCores: 0, maxRssMb: 0 };
  const startCpu = cpuSeconds(pid);
  const startAt = performance.now();
  let maxRssMb = memory(pid).rssMb;
  const sampler = setInterval(() => {
    try {
      maxRssMb = Math.max(maxRssMb, memory(pid).rssMb);
    } catch {
      // the process may be gone (a failure scenario); the caller sees that elsewhere
    }
  }, 200);
  try {
    const result = await work();
    const elapsed = (performance.now() - startAt) / 1000;
    maxRssMb = Math.max(maxRssMb, memory(pid).rssMb);
    return { result, cpuCores: (cpuSeconds(pid) - startCpu) / elapsed, maxRssMb };
  } finally {
    clearInterval(sampler);
  }
}
