/** Errors from talking to the API server, each with a stable code. */

export type KubeErrorCode =
  | "TETHER_ERR_KUBE_API"
  | "TETHER_ERR_KUBE_TRANSPORT"
  | "TETHER_ERR_KUBE_GONE"
  | "TETHER_ERR_NOT_LEADER"
  | "TETHER_ERR_KUBE_CONFIG";

export class KubeError extends Error {
  readonly code: KubeErrorCode;
  /** HTTP status from the API server, 0 when no answer came. */
  readonly status: number;
  /** The Status reason (NotFound, Conflict, AlreadyExists, ...), when the server sent one. */
  readonly reason: string;

  constructor(code: KubeErrorCode, message: string, status = 0, reason = "", options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeError";
    this.code = code;
    this.status = status;
    this.reason = reason;
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeError && error.status === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof KubeError && error.status === 409;
}
