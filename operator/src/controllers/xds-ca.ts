/**
 * Keeps the tether-xds-ca ConfigMap (the CA bundle the sidecars verify the xDS server with) in the
 * namespace of each Agent and Broker, applied before their Deployments so pods find it mounted.
 */
import { serverSideApply } from "../kube/apply.ts";
import { RESOURCES, type KubeObject } from "../kube/resources.ts";
import { renderXdsCaConfigMap, XDS_CA_CONFIGMAP, XDS_CA_KEY } from "../render/index.ts";
import type { ControllerContext } from "./context.ts";

export async function applyXdsCaBundle(ctx: ControllerContext, namespace: string): Promise<void> {
  if (ctx.xdsCa === undefined || ctx.render.xds?.tls !== true) return;
  const bundle = ctx.xdsCa.bundle();
  const cached = ctx.stores.configMaps.get(namespace, XDS_CA_CONFIGMAP);
  const data = cached?.["data"] as Record<string, string> | undefined;
  if (data?.[XDS_CA_KEY] === bundle) return;
  const desired = renderXdsCaConfigMap(namespace, bundle);
  const result = await serverSideApply(ctx.client, RESOURCES.configMaps, desired as unknown as KubeObject);
  ctx.stores.configMaps.remember(result);
}
