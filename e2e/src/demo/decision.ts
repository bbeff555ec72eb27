// The demo policy servers' decision rule: small, deterministic and documented, so a test can
// predict every answer without a policy store.

/** Actions a demo policy server knows. Anything else is a bad request. */
export const KNOWN_ACTIONS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);

/** Resources under these prefixes are denied; every other resource is allowed. */
export const DENIED_PREFIXES: readonly string[] = ["/private", "/deny"];

export interface Decision {
  readonly allow: boolean;
  readonly reason: string;
}

export interface DecisionError {
  readonly code: "TETHER_ERR_DEMO_BAD_REQUEST";
  readonly message: string;
}

/**
 * Decides whether `action` on `resource` is allowed. Returns an error (never throws) for input
 * a real policy server would reject, naming the offending field.
 */
export function decide(resource: string | null, action: string | null): Decision | DecisionError {
  if (resource === null || resource === "") {
    return { code: "TETHER_ERR_DEMO_BAD_REQUEST", message: "resource: required" };
  }
  if (!resource.startsWith("/")) {
    return { code: "TETHER_ERR_DEMO_BAD_REQUEST", message: "resource: must start with '/'" };
  }
  const verb = (action ?? "GET").toUpperCase();
  if (!KNOWN_ACTIONS.has(verb)) {
    return {
      code: "TETHER_ERR_DEMO_BAD_REQUEST",
      message: `action: unknown action ${JSON.stringify(action)} (expected one of ${[...KNOWN_ACTIONS].join(", ")})`,
    };
  }
  for (const prefix of DENIED_PREFIXES) {
    if (resource === prefix || resource.startsWith(prefix + "/")) {
      return { allow: false, reason: `resource under ${prefix}` };
    }
  }
  return { allow: true, reason: "default allow" };
}

export function isDecisionError(value: Decision | DecisionError): value is DecisionError {
  return "code" in value;
}
