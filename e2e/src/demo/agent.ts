// The smallest demo web agent: an HTTP server that, for every request it serves, asks the policy
// server for a decision through its local Tether sidecar — like a legacy web agent asking its
// policy server before letting a request through.
//
//   node e2e/src/demo/agent.ts --port 8000 [--host 0.0.0.0] [--policy-server 127.0.0.1:15001]
//
// The policy server address defaults to TETHER_POLICY_SERVER_HOST:TETHER_POLICY_SERVER_PORT, the
// environment the operator gives agent containers (the sidecar's listener). Answers:
//   GET /healthz            → 200 {status: "ok"} (the agent itself, no decision asked)
//   any other request       → 200 {allow: true, …} | 403 {allow: false, …} when the decision says so |
//                             502 TETHER_ERR_DEMO_NO_DECISION when no decision came back
// Prints {"event":"listening","agent":…,"host":…,"port":…,"policyServer":…} once listening.
import http from "node:http";
import { hostname } from "node:os";
import { parseStringFlags, portFlag } from "./cli.ts";

export interface AgentOptions {
  readonly port: number;
  readonly host: string;
  /** host:port of the policy server (the sidecar's listener). */
  readonly policyServer: string;
  readonly name: string;
  /** Deadline for one decision. Default 35 s: longer than the sidecar's default hold timeout. */
  readonly decisionTimeoutMs?: number;
}

export class AgentConfigError extends Error {
  readonly code = "TETHER_ERR_DEMO_CONFIG";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_CONFIG: ${message}`);
    this.name = "AgentConfigError";
  }
}

/** Parses the agent's flags; the policy server falls back to the operator's environment variables. */
export function parseAgentArgs(argv: readonly string[], env: NodeJS.ProcessEnv): AgentOptions {
  const values = parseStringFlags(argv, ["port", "host", "policy-server", "name"], AgentConfigError);
  const port = portFlag(values.port, AgentConfigError);
  const envServer =
    env["TETHER_POLICY_SERVER_PORT"] === undefined
      ? undefined
      : `${env["TETHER_POLICY_SERVER_HOST"] ?? "127.0.0.1"}:${env["TETHER_POLICY_SERVER_PORT"]}`;
  const policyServer = values["policy-server"] ?? envServer;
  if (policyServer === undefined || !/^[^\s/:]+:\d{1,5}$/.test(policyServer)) {
    throw new AgentConfigError(
      `--policy-server: expected host:port (or TETHER_POLICY_SERVER_HOST/PORT), got ${policyServer ?? "(none)"}`,
    );
  }
  return { port, host: values.host ?? "0.0.0.0", policyServer, name: values.name ?? hostname() };
}

async function decision(options: AgentOptions, resource: string, action: string): Promise<[number, unknown]> {
  const query = new URLSearchParams({ resource, action });
  const res = await fetch(`http://${options.policyServer}/authorize?${query.toString()}`, {
    signal: AbortSignal.timeout(options.decisionTimeoutMs ?? 35_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return [res.status, body];
}

/** Creates (does not start) the agent's HTTP server. */
export function createAgentServer(options: AgentOptions): http.Server {
  return http.createServer((request, response) => {
    const send = (status: number, body: Record<string, unknown>): void => {
      const text = JSON.stringify({ ...body, agent: options.name });
      response.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      response.end(text);
    };
    const url = new URL(request.url ?? "/", "http://agent.invalid");
    if (url.pathname === "/healthz") {
      send(200, { status: "ok" });
      return;
    }
    const action = KNOWN_METHODS.has(request.method ?? "") ? (request.method ?? "GET") : "GET";
    decision(options, url.pathname, action)
      .then(([status, body]) => {
        const answer = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
        if (status === 200 && typeof answer["allow"] === "boolean") {
          send(answer["allow"] ? 200 : 403, { ...answer, path: url.pathname });
        } else {
          send(502, { code: "TETHER_ERR_DEMO_NO_DECISION", status, body, path: url.pathname });
        }
      })
      .catch((error: unknown) => {
        send(502, {
          code: "TETHER_ERR_DEMO_NO_DECISION",
          message: error instanceof Error ? error.message : String(error),
          path: url.pathname,
        });
      });
    request.resume();
  });
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);

/** Runs the agent from a command line until SIGTERM/SIGINT; exit code 2 for a bad flag. */
export async function runAgent(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  let options: AgentOptions;
  try {
    options = parseAgentArgs(argv, env);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const server = createAgentServer(options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: options.port, host: options.host }, resolve);
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  process.stdout.write(
    JSON.stringify({
      event: "listening",
      agent: options.name,
      host: options.host,
      port,
      policyServer: options.policyServer,
      pid: process.pid,
    }) + "\n",
  );
  const shutdown = (): void => {
    server.closeIdleConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

if (import.meta.main) {
  runAgent(process.argv.slice(2), process.env).catch((error: unknown) => {
    process.stderr.write(`agent failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
