import { describe, expect, it } from "vitest";
import { EARLY_RESOLVE_MIN_INTERVAL_MS, nextRefreshDelay } from "./dns-refresh.ts";

const base = { ok: true, refreshRateMs: 5000, ttlMs: undefined, failureDelayMs: undefined, watching: false };

describe("nextRefreshDelay", () => {
  it("waits dns_refresh_rate after an answer without a respected TTL", () => {
    expect(nextRefreshDelay(base)).toBe(5000);
  });

  it("waits the answer's TTL with respect_dns_ttl, longer or shorter than the refresh rate", () => {
    expect(nextRefreshDelay({ ...base, ttlMs: 30_000 })).toBe(30_000);
    expect(nextRefreshDelay({ ...base, ttlMs: 1000 })).toBe(1000);
  });

  it("treats a TTL of 0 as no TTL, so a zero-TTL answer does not spin", () => {
    expect(nextRefreshDelay({ ...base, ttlMs: 0 })).toBe(5000);
  });

  it("uses the failure back-off after a failed resolution, else the refresh rate", () => {
    expect(nextRefreshDelay({ ...base, ok: false, failureDelayMs: 700 })).toBe(700);
    expect(nextRefreshDelay({ ...base, ok: false })).toBe(5000);
  });

  it("re-resolves soon while a sign's window is open and the answer has not changed", () => {
    expect(nextRefreshDelay({ ...base, watching: true })).toBe(EARLY_RESOLVE_MIN_INTERVAL_MS);
    expect(nextRefreshDelay({ ...base, ttlMs: 100, watching: true })).toBe(100);
  });
});
