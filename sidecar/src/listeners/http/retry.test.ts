import { describe, expect, it } from "vitest";
import { retryPolicySchema } from "@tether/envoy";
import { compileRetryPolicy, retryOnBits, retryOnFailure, retryOnStatus } from "./retry.ts";

describe("retry_on decisions (Envoy semantics)", () => {
  const bits = (s: string): number => retryOnBits(s.split(",") as never);

  it("connect-failure retries only connection failures", () => {
    const b = bits("connect-failure");
    expect(retryOnFailure(b, "connect_failure")).toBe(true);
    expect(retryOnFailure(b, "reset_before_request")).toBe(false);
    expect(retryOnFailure(b, "reset_after_request")).toBe(false);
  });

  it("reset-before-request never retries a request that may have reached the server", () => {
    const b = bits("reset-before-request");
    expect(retryOnFailure(b, "connect_failure")).toBe(true);
    expect(retryOnFailure(b, "reset_before_request")).toBe(true);
    expect(retryOnFailure(b, "reset_after_request")).toBe(false);
    expect(retryOnFailure(b, "per_try_timeout")).toBe(false);
  });

  it("reset, 5xx and gateway-error retry any reset, sent or not", () => {
    for (const s of ["reset", "5xx", "gateway-error"]) {
      expect(retryOnFailure(bits(s), "reset_after_request")).toBe(true);
      expect(retryOnFailure(bits(s), "per_try_timeout")).toBe(true);
      expect(retryOnFailure(bits(s), "connect_failure")).toBe(true);
    }
  });

  it("status-based retries", () => {
    expect(retryOnStatus(bits("5xx"), 500, [])).toBe(true);
    expect(retryOnStatus(bits("5xx"), 404, [])).toBe(false);
    expect(retryOnStatus(bits("gateway-error"), 500, [])).toBe(false);
    expect(retryOnStatus(bits("gateway-error"), 503, [])).toBe(true);
    expect(retryOnStatus(bits("retriable-status-codes"), 409, [409])).toBe(true);
    expect(retryOnStatus(bits("reset,connect-failure"), 503, [])).toBe(false);
  });

  it("compiles defaults: 1 retry, 25 ms / 250 ms back-off", () => {
    const p = compileRetryPolicy(retryPolicySchema.parse({ retry_on: "reset" }));
    expect(p).toMatchObject({ numRetries: 1, backoffBaseMs: 25, backoffMaxMs: 250, perTryTimeoutMs: 0 });
    expect(compileRetryPolicy(undefined)).toBeUndefined();
  });
});
