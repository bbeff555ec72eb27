// Entry point of the demo image (e2e/Dockerfile): one image, two roles, picked by the first argument.
//
//   policy-server [flags]   the demo policy server (see ../demo/README.md); in a pod it listens on
//                           0.0.0.0 and names itself after the pod unless --host / --name are given
//   agent [flags]           the demo web agent (../demo/agent.ts), asking for decisions through the
//                           sidecar at TETHER_POLICY_SERVER_HOST:TETHER_POLICY_SERVER_PORT
import { hostname } from "node:os";
import { runAgent } from "../demo/agent.ts";
import { runPolicyServerCli } from "../demo/policy-server.ts";

export const USAGE = "usage: tether-demo policy-server --port N [flags] | tether-demo agent --port N [flags]";

/** The policy server's flags with the in-pod defaults (--host 0.0.0.0, --name <pod name>) added. */
export function policyServerArgs(argv: readonly string[], podName: string): string[] {
  const has = (flag: string): boolean => argv.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [
    ...argv,
    ...(has("--host") ? [] : ["--host", "0.0.0.0"]),
    ...(has("--name") ? [] : ["--name", podName.replace(/[^A-Za-z0-9._-]/g, "-") || "policy-server"]),
  ];
}

async function runPolicyServer(argv: readonly string[]): Promise<void> {
  await runPolicyServerCli(policyServerArgs(argv, hostname()));
}

async function main(argv: readonly string[]): Promise<void> {
  const [role, ...rest] = argv;
  if (role === "policy-server") await runPolicyServer(rest);
  else if (role === "agent") await runAgent(rest, process.env);
  else {
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
