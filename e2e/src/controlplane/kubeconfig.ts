import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";

/** Who a kubeconfig authenticates as: a client certificate, or a bearer token. */
export type KubeconfigUser =
  | { readonly name: string; readonly clientCert: string; readonly clientKey: string }
  | { readonly name: string; readonly token: string };

const b64 = (pem: string): string => Buffer.from(pem, "utf8").toString("base64");

/**
 * Writes a self-contained kubeconfig (certificates embedded as *-data, mode 0600) with a single
 * cluster, user and context, so the file still works when copied elsewhere.
 */
export async function writeKubeconfig(
  path: string,
  server: string,
  caPem: string,
  user: KubeconfigUser,
): Promise<void> {
  const credentials =
    "token" in user
      ? { token: user.token }
      : { "client-certificate-data": b64(user.clientCert), "client-key-data": b64(user.clientKey) };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "tether", cluster: { server, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: user.name, user: credentials }],
    contexts: [{ name: user.name, context: { cluster: "tether", user: user.name, namespace: "default" } }],
    "current-context": user.name,
    preferences: {},
  };
  await writeFile(
    path,
    `# Written by Tether's control-plane helper (e2e/src/controlplane).\n${stringify(config)}`,
    {
      mode: 0o600,
    },
  );
}
