import { describe, expect, it } from "vitest";
import { parseAgentArgs } from "../demo/agent.ts";
import { ROLES, USAGE, idleEvent, podServerName, policyServerArgs } from "./main.ts";

describe("demo image entry", () => {
  it("adds the in-pod defaults to the policy server's flags, unless given", () => {
    expect(policyServerArgs(["--port", "8080"], "ps-main-7d9f-x2k4q")).toEqual([
      "--port",
      "8080",
      "--host",
      "0.0.0.0",
      "--name",
      "ps-main-7d9f-x2k4q",
    ]);
    expect(policyServerArgs(["--port", "1", "--host", "127.0.0.1", "--name=ps1"], "pod")).toEqual([
      "--port",
      "1",
      "--host",
      "127.0.0.1",
      "--name=ps1",
    ]);
  });

  it("points the agent at the sidecar from the operator's environment, or --policy-server", () => {
    const env = { TETHER_POLICY_SERVER_HOST: "127.0.0.1", TETHER_POLICY_SERVER_PORT: "15001" };
    expect(parseAgentArgs(["--port", "8000", "--name", "web"], env)).toEqual({
      port: 8000,
      host: "0.0.0.0",
      policyServer: "127.0.0.1:15001",
      name: "web",
    });
    expect(parseAgentArgs(["--port", "0", "--policy-server", "h:1"], env).policyServer).toBe("h:1");
  });

  it.each([
    [["--port", "x"], "--port"],
    [["--port", "8000"], "--policy-server"],
    [["--port", "8000", "--bogus"], "bogus"],
  ])("rejects agent flags %j, naming the flag", (argv, flag) => {
    expect(() => parseAgentArgs(argv, {})).toThrow(flag);
  });

  it("lists every role in the usage, names servers after pods, prints the idle exec line", () => {
    expect(ROLES).toEqual(["policy-server", "agent", "tls-backend", "load", "request", "idle"]);
    for (const role of ROLES) expect(USAGE).toContain(role);
    expect(podServerName("appserver-0", "x")).toBe("appserver-0");
    expect(podServerName("a b/c", "x")).toBe("a-b-c");
    expect(podServerName("", "tls-backend")).toBe("tls-backend");
    expect(JSON.parse(idleEvent("/usr/local/bin/node", "/app/e2e/dist/image/main.js"))).toEqual({
      event: "idle",
      exec: ["/usr/local/bin/node", "/app/e2e/dist/image/main.js"],
    });
  });
});
