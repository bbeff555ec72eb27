import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadApiAccess } from "./kubeconfig.ts";

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    "current-context": "ctx",
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443", ...cluster } }],
    users: [{ name: "u", user }],
  });
}

describe("loadApiAccess", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tether-kubeconfig-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it("reads the server, inline CA and client certificate of the current context", async () => {
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    const path = write(
      "config",
      kubeconfig(
        { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
        { "certificate-authority-data": b64("CA") },
      ),
    );
    const access = loadApiAccess(path);
    expect(access?.server).toBe("https://127.0.0.1:6443");
    expect(String(access?.ca)).toBe("CA");
    expect(String(access?.cert)).toBe("CERT");
    expect(String(access?.key)).toBe("KEY");
    expect(access?.skipTlsVerify).toBe(false);
    expect(await access?.headers()).toEqual({});
  });

  it("sends a bearer token, from the file named relative to the kubeconfig", async () => {
    write("token", "secret-token\n");
    write("ca.crt", "CA-FILE");
    const path = write(
      "config",
      kubeconfig(
        { tokenFile: "token" },
        { "certificate-authority": "ca.crt", "insecure-skip-tls-verify": true },
      ),
    );
    const access = loadApiAccess(path);
    expect(String(access?.ca)).toBe("CA-FILE");
    expect(access?.skipTlsVerify).toBe(true);
    expect(await access?.headers()).toEqual({ authorization: "Bearer secret-token" });
  });

  it("leaves exec and auth-provider users to client-node", () => {
    const path = write("config", kubeconfig({ exec: { command: "aws" } }));
    expect(loadApiAccess(path)).toBeUndefined();
  });

  it("names the problem when the current context has no cluster", () => {
    const path = write("config", JSON.stringify({ "current-context": "none" }));
    expect(() => loadApiAccess(path)).toThrow(/no current cluster/);
  });
});
