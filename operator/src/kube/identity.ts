/**
 * Who is calling, as the API server says: a TokenReview (authentication.k8s.io/v1) of a bearer
 * token, and a GET of the pod a token is bound to. Used by the xDS server to know its sidecars.
 */
import type { KubeTransport } from "./client.ts";
import { isNotFound } from "./errors.ts";
import { AGENT_ANNOTATION } from "../render/meta.ts";

/** TokenReview's user.extra keys of a pod-bound (projected) ServiceAccount token. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
export const POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid";
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

export type TokenReviewResult =
  | { readonly authenticated: false; readonly error: string }
  | {
      readonly authenticated: true;
      readonly username: string;
      /** The ServiceAccount's namespace; undefined when the user is not a ServiceAccount. */
      readonly namespace: string | undefined;
      /** The pod the token is bound to; undefined for a token not bound to a pod. */
      readonly pod: { readonly name: string; readonly uid: string } | undefined;
    };

/** The part of a Pod the xDS server checks. */
export interface PodIdentity {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Only what the xDS server reads: the sidecar-injection webhook's `tether.dev/agent`. */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface IdentityApi {
  reviewToken(token: string, audiences: readonly string[]): Promise<TokenReviewResult>;
  /** undefined when there is no such pod. */
  getPod(namespace: string, name: string): Promise<PodIdentity | undefined>;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string; extra?: Record<string, string[] | undefined> };
}

interface PodJson {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}

/** The API server as IdentityApi. TokenReview is a create that changes nothing: no leader gate. */
export function kubeIdentityApi(client: KubeTransport, timeoutMs = 5_000): IdentityApi {
  return {
    async reviewToken(token, audiences) {
      const review = await client.request<{ status?: TokenReviewStatus }>(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: { token, audiences: [...audiences] },
          },
          timeoutMs,
        },
        true,
      );
      const status = review.status ?? {};
      if (status.authenticated !== true) {
        return { authenticated: false, error: status.error ?? "the API server did not authenticate it" };
      }
      const username = status.user?.username ?? "";
      const extra = status.user?.extra ?? {};
      const name = extra[POD_NAME_EXTRA]?.[0];
      const uid = extra[POD_UID_EXTRA]?.[0];
      return {
        authenticated: true,
        username,
        namespace: SERVICE_ACCOUNT_USER.exec(username)?.[1],
        pod: name === undefined || uid === undefined ? undefined : { name, uid },
      };
    },
    async getPod(namespace, name) {
      let pod: PodJson;
      try {
        pod = await client.request<PodJson>(
          "GET",
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
          { timeoutMs },
        );
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
      // Only the annotation the xDS server reads is kept: pods are cached, whole annotations can be large.
      const adoptedBy = pod.metadata?.annotations?.[AGENT_ANNOTATION];
      return {
        namespace: pod.metadata?.namespace ?? "",
        name: pod.metadata?.name ?? "",
        uid: pod.metadata?.uid ?? "",
        labels: pod.metadata?.labels ?? {},
        ...(adoptedBy === undefined ? {} : { annotations: { [AGENT_ANNOTATION]: adoptedBy } }),
      };
    },
  };
}
