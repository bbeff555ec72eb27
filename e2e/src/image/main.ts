// Entry point of the demo image (e2e/Dockerfile): one image, several roles, picked by the first argument.
//
//   policy-server [flags]   the demo policy server (see ../demo/README.md); in a pod it listens on
//                           0.0.0.0 and names itself after the pod unless --host / --name are given
//   agent [flags]           the demo web agent (../demo/agent.ts), asking for decisions through the
//                           sidecar at TETHER_POLICY_SERVER_HOST:TETHER_POLICY_SERVER_PORT
//   tls-backend [flags]     a TLS application server behind a broker (../demo/tls-backend.ts), named
//                           after the pod unless --name is given
//   load [flags]            constant-rate traffic until stdin says stop, then a JSON summary
//                           (../demo/load.ts): the end-to-end scenarios' client
//   request [flags]         one HTTP request or TLS exchange, printed as JSON (../demo/request.ts)
//   idle                    does nothing until SIGTERM: the client pod's main process, which the
//                           scenarios `kubectl exec` load and request commands into; it prints the
//                           command line that runs this entry point ({"event":"idle","exec":[…]})
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { runAgent } from "../demo/agent.ts";
import { runLoadCli } from "../demo/load.ts";
import { runPolicyServerCli } from "../demo/policy-server.ts";
import { runRequestCli } from "../demo/request.ts";
import { runTlsBackendCli } from "../demo/tls-backend.ts";

export const ROLES = ["policy-server", "agent", "tls-backend", "load", "request", "idle"] as const;
export const USAGE = `usage: tether-demo ${ROLES.join(" | ")} [flags]`;

/** The pod's name as a server name (letters, digits, '.', '_', '-'). */
export function podServerName(podName: string, fallback: string): string {
  return podName.replace(/[^A-Za-z0-9._-]/g, "-") || fallback;
}

/** The policy server's flags with the in-pod defaults (--host 0.0.0.0, --name <pod name>) added. */
export function policyServerArgs(argv: readonly string[], podName: string): string[] {
  const has = (flag: string): boolean => argv.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [
    ...argv,
    ...(has("--host") ? [] : ["--host", "0.0.0.0"]),
    ...(has("--name") ? [] : ["--name", podServerName(podName, "policy-server")]),
  ];
}

async function runPolicyServer(argv: readonly string[]): Promise<void> {
  await runPolicyServerCli(policyServerArgs(argv, hostname()));
}

/** The idle line: how to run this entry point again (`kubectl exec <pod> -- <exec…> load …`). */
export function idleEvent(execPath: string, entry: string): string {
  return JSON.stringify({ event: "idle", exec: [execPath, entry] });
}

function idle(): void {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stop = (): void => {
    clearInterval(keepAlive);
    process.exit(0);
  };
  // Handlers first: whoever reads the line below may signal at once.
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdout.write(idleEvent(process.execPath, fileURLToPath(import.meta.url)) + "\n");
}

async function main(argv: readonly string[]): Promise<void> {
  const [role, ...rest] = argv;
  if (role === "policy-server") await runPolicyServer(rest);
  else if (role === "agent") await runAgent(rest, process.env);
  else if (role === "tls-backend") await runTlsBackendCli(rest, podServerName(hostname(), "tls-backend"));
  else if (role === "load") await runLoadCli(rest);
  else if (role === "request") await runRequestCli(rest);
  else if (role === "idle") {
    if (rest.length > 0) {
      process.stderr.write(`idle: takes no flags, got ${rest.join(" ")}\n`);
      process.exit(2);
    }
    idle();
  } else {
    process.stderr.write(`${role === undefined ? "no role given" : `unknown role "${role}"`}\n${USAGE}\n`);
    process.exit(2);
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`tether-demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
