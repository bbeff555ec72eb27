// Envoy's retry_on decisions, as pure functions over a bit set compiled from the config.
import type { RetryOn, RetryPolicyConfig } from "@tether/envoy";

export const RETRY_5XX = 1;
export const RETRY_GATEWAY_ERROR = 2;
export const RETRY_RESET = 4;
export const RETRY_RESET_BEFORE_REQUEST = 8;
export const RETRY_CONNECT_FAILURE = 16;
export const RETRY_STATUS_CODES = 32;

const BITS: Record<RetryOn, number> = {
  "5xx": RETRY_5XX,
  "gateway-error": RETRY_GATEWAY_ERROR,
  reset: RETRY_RESET,
  "reset-before-request": RETRY_RESET_BEFORE_REQUEST,
  "connect-failure": RETRY_CONNECT_FAILURE,
  "retriable-status-codes": RETRY_STATUS_CODES,
};

export function retryOnBits(retryOn: readonly RetryOn[]): number {
  let bits = 0;
  for (const r of retryOn) bits |= BITS[r];
  return bits;
}

/**
 * How an attempt failed before a response arrived.
 * - `connect_failure`: no connection was made (refused, connect timeout): nothing was sent.
 * - `reset`: the connection broke; `requestStarted` says whether the request began to be written.
 * - `per_try_timeout`: the attempt timed out after the request was sent.
 */
export type AttemptFailure =
  "connect_failure" | "reset_before_request" | "reset_after_request" | "per_try_timeout";

/** Envoy: connect-failure → retry; reset-before-request → only if nothing was sent; reset, 5xx and gateway-error → any reset. */
export function retryOnFailure(bits: number, failure: AttemptFailure): boolean {
  if (failure === "connect_failure" && (bits & RETRY_CONNECT_FAILURE) !== 0) return true;
  const started = failure === "reset_after_request" || failure === "per_try_timeout";
  if (!started && (bits & RETRY_RESET_BEFORE_REQUEST) !== 0) return true;
  return (bits & (RETRY_RESET | RETRY_5XX | RETRY_GATEWAY_ERROR)) !== 0;
}

export function retryOnStatus(
  bits: number,
  status: number,
  retriableStatusCodes: readonly number[],
): boolean {
  if ((bits & RETRY_5XX) !== 0 && status >= 500) return true;
  if ((bits & RETRY_GATEWAY_ERROR) !== 0 && status >= 502 && status <= 504) return true;
  return (bits & RETRY_STATUS_CODES) !== 0 && retriableStatusCodes.includes(status);
}

export interface CompiledRetryPolicy {
  readonly bits: number;
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly retriableStatusCodes: readonly number[];
  /** retry_host_predicate previous_hosts: a retry avoids hosts already tried. */
  readonly avoidPreviousHosts: boolean;
  readonly hostSelectionMaxAttempts: number;
}

export function compileRetryPolicy(p: RetryPolicyConfig | undefined): CompiledRetryPolicy | undefined {
  if (p === undefined) return undefined;
  return {
    bits: retryOnBits(p.retry_on),
    numRetries: p.num_retries,
    perTryTimeoutMs: p.per_try_timeout,
    backoffBaseMs: p.retry_back_off?.base_interval ?? 25,
    backoffMaxMs: p.retry_back_off?.max_interval ?? 250,
    retriableStatusCodes: p.retriable_status_codes,
    avoidPreviousHosts: p.retry_host_predicate.length > 0,
    hostSelectionMaxAttempts: p.host_selection_retry_max_attempts,
  };
}
