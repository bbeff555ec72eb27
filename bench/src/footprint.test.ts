import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { agentSidecarConfig } from "./footprint.ts";
import { REPO_ROOT } from "./targets.ts";

describe("agentSidecarConfig", () => {
  it("is a config the built sidecar accepts, with the ProxyRoute-style route and the decision cache", () => {
    const text = agentSidecarConfig(15001, 15000, [{ host: "127.0.0.1", port: 8081 }]);
    const dir = mkdtempSync(path.join(os.tmpdir(), "footprint-test-"));
    try {
      const file = path.join(dir, "envoy.yaml");
      writeFileSync(file, text);
      const out = execFileSync(
        process.execPath,
        [`${REPO_ROOT}sidecar/bin/tether-sidecar.js`, "--config", file, "--mode", "validate"],
        { encoding: "utf8" },
      );
      expect(out).toContain("OK");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(text).toContain("prefix_rewrite: /\n");
    expect(text).toContain("type.googleapis.com/tether.v1alpha1.DecisionCache");
  });
});
