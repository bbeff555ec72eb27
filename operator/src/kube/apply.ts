/** Server-side apply of children and of status, with field manager tether-operator. */
import type { KubeTransport } from "./client.ts";
import { resourcePath, type KubeObject, type ResourceType } from "./resources.ts";

/** The field manager of every write, as `kubectl get --show-managed-fields` shows it. */
export const FIELD_MANAGER = "tether-operator";
const APPLY = "application/apply-patch+yaml";

/** Applies `object` (JSON is YAML) with force: the operator owns every field it sets. */
export function serverSideApply(
  client: KubeTransport,
  resource: ResourceType,
  object: KubeObject,
): Promise<KubeObject> {
  const { namespace, name } = object.metadata;
  return client.request<KubeObject>("PATCH", resourcePath(resource, namespace, name), {
    query: { fieldManager: FIELD_MANAGER, force: true },
    body: object,
    contentType: APPLY,
  });
}

/** Applies `status` through the status subresource; fields left out are dropped (we own them). */
export function applyStatus(
  client: KubeTransport,
  resource: ResourceType,
  object: KubeObject,
  status: unknown,
): Promise<KubeObject> {
  const { namespace, name } = object.metadata;
  return client.request<KubeObject>("PATCH", resourcePath(resource, namespace, name, "status"), {
    query: { fieldManager: FIELD_MANAGER, force: true },
    body: { apiVersion: object.apiVersion, kind: object.kind, metadata: { name, namespace }, status },
    contentType: APPLY,
  });
}
