/**
 * Keeps the tether-xds-ca ConfigMap (the CA bundle the sidecars verify the xDS server with) in the
 * namespace of each Agent and Broker, applied before their Deployments so pods find it mounted, and
 * deletes it once the namespace has none left.
 */
import { serverSideApply } from "../kube/apply.ts";
import { isNotFound } from "../kube/errors.ts";
import { RESOURCES, resourcePath, type KubeObject } from "../kube/resources.ts";
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

/** Whether any Agent or Broker (not being deleted) is left in the namespace, by the caches. */
export function hasXdsCaUsers(ctx: Pick<ControllerContext, "stores">, namespace: string): boolean {
  const live = (o: KubeObject): boolean => o.metadata.deletionTimestamp === undefined;
  return ctx.stores.agents.list(namespace).some(live) || ctx.stores.brokers.list(namespace).some(live);
}

/**
 * Deletes tether-xds-ca when the last Agent or Broker of its namespace is gone. The ConfigMap is
 * shared, so it has no ownerReference for the garbage collector to follow; the delete carries the
 * cached uid and resourceVersion as preconditions, so a ConfigMap re-created or changed meanwhile
 * stays (an Agent created at the same moment re-applies it when the deletion's event arrives).
 */
export async function pruneXdsCaBundle(ctx: ControllerContext, namespace: string): Promise<void> {
  const cached = ctx.stores.configMaps.get(namespace, XDS_CA_CONFIGMAP);
  if (cached === undefined || hasXdsCaUsers(ctx, namespace)) return;
  const { uid, resourceVersion } = cached.metadata;
  try {
    await ctx.client.request("DELETE", resourcePath(RESOURCES.configMaps, namespace, XDS_CA_CONFIGMAP), {
      body: {
        apiVersion: "v1",
        kind: "DeleteOptions",
        ...(uid === undefined ? {} : { preconditions: { uid, resourceVersion } }),
      },
    });
    ctx.logger.info({ namespace }, "deleted tether-xds-ca: no Agent or Broker left in the namespace");
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}
