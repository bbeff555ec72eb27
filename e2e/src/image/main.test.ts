import { describe, expect, it } from "vitest";
import { parseAgentArgs } from "../demo/agent.ts";
import { policyServerArgs } from "./main.ts";

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
});
