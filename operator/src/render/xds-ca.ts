/**
 * The CA bundle sidecars verify the operator's xDS server with: one ConfigMap per namespace that has
 * Agents or Brokers (shared by all of them, so no ownerReference), mounted into the sidecar
 * container only.
 */
import type { JsonObject } from "./pod.ts";
import { MANAGED_BY } from "./meta.ts";

export const XDS_CA_CONFIGMAP = "tether-xds-ca";
export const XDS_CA_KEY = "ca.crt";
export const XDS_CA_VOLUME = "tether-xds-ca";
export const XDS_CA_DIR = "/etc/tether/xds-ca";
export const XDS_CA_FILE = `${XDS_CA_DIR}/${XDS_CA_KEY}`;

export interface XdsCaConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  data: Record<string, string>;
}

export function renderXdsCaConfigMap(namespace: string, bundlePem: string): XdsCaConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: XDS_CA_CONFIGMAP,
      namespace,
      labels: {
        "app.kubernetes.io/name": "tether",
        "app.kubernetes.io/component": "xds-ca",
        "app.kubernetes.io/managed-by": MANAGED_BY,
      },
    },
    data: { [XDS_CA_KEY]: bundlePem },
  };
}

export function xdsCaVolume(): JsonObject {
  return { name: XDS_CA_VOLUME, configMap: { name: XDS_CA_CONFIGMAP } };
}

export function xdsCaMount(): JsonObject {
  return { name: XDS_CA_VOLUME, mountPath: XDS_CA_DIR, readOnly: true };
}
