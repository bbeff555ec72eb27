import { z } from "zod";
import { DURATION_PATTERN, parseDuration } from "./duration.ts";
import { annotate, doc, withRules } from "./rules.ts";

export { annotate, doc, withRules } from "./rules.ts";

/** The API group and version of every Tether kind. */
export const GROUP = "tether.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A Go-style duration string (`500ms`, `2s`, `3m`, `1h`). */
export function duration(description: string): z.ZodString {
  return doc(
    z
      .string()
      .max(32)
      .regex(new RegExp(DURATION_PATTERN), { message: "must be a duration such as 500ms, 2s, 3m or 1h" }),
    description,
  );
}

/** Milliseconds of a duration already validated by `duration()`. */
export const ms = parseDuration;

export function port(description: string): z.ZodInt {
  return doc(z.int().min(1).max(65535), description);
}

/** An object reference within the same namespace. */
export function localRef(description: string): z.ZodObject<{ name: z.ZodString }> {
  return doc(
    z.strictObject({
      name: doc(
        z
          .string()
          .min(1)
          .max(253)
          .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: "must be a lowercase RFC 1123 name" }),
        "Name of the object, in the same namespace.",
      ),
    }),
    description,
  );
}

/** A key of a Secret in the same namespace. */
export function secretKeyRef(description: string, defaultKey: string) {
  return doc(
    z.strictObject({
      name: doc(z.string().min(1).max(253), "Name of the Secret, in the same namespace."),
      key: doc(z.string().min(1).max(253).default(defaultKey), `Key in the Secret. Default ${defaultKey}.`),
    }),
    description,
  );
}

/** A DNS name or an IP address. */
export function host(description: string): z.ZodString {
  return doc(
    z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$/, {
        message: "must be a DNS name or an IP address",
      }),
    description,
  );
}

/** Priority of an upstream server: 0 is the primary group, 1 the secondary, and so on. */
export function priority() {
  return doc(
    z.int().min(0).max(8).default(0),
    "Failover priority: 0 = primary, 1 = secondary, ... (0..8). Lower priorities take traffic only while higher ones cannot. Default 0.",
  );
}

/**
 * A PodTemplateSpec. Kubernetes validates the pod itself when the operator creates the
 * Deployment; here we require what Tether needs (at least one container) and keep the rest.
 */
export function podTemplate(description: string) {
  const container = annotate(
    z.looseObject({
      name: doc(z.string().min(1).max(63), "Name of the container."),
    }),
    { description: "A container (core/v1 Container).", preserveUnknownFields: true },
  );
  return doc(
    z.strictObject({
      metadata: annotate(z.looseObject({}), {
        description: "Labels and annotations for the pods.",
        preserveUnknownFields: true,
      }).optional(),
      spec: annotate(
        z.looseObject({
          containers: doc(z.array(container).min(1).max(32), "The pod's containers (at least one)."),
        }),
        { description: "The pod spec (core/v1 PodSpec).", preserveUnknownFields: true },
      ),
    }),
    description,
  );
}

/** A metav1.Condition, as written to status.conditions. */
export const condition = z.strictObject({
  type: doc(z.string().min(1).max(316), "Type of condition in CamelCase, e.g. Ready."),
  status: doc(z.enum(["True", "False", "Unknown"]), "Status of the condition: True, False or Unknown."),
  observedGeneration: doc(z.int().min(0).optional(), "The .metadata.generation the condition was set from."),
  lastTransitionTime: annotate(z.string().max(64), {
    description: "When the condition last changed status (RFC 3339).",
    format: "date-time",
  }),
  reason: doc(z.string().min(1).max(1024), "Programmatic identifier of the cause, in CamelCase."),
  message: doc(z.string().max(32768), "Human-readable detail of the condition."),
});
export type Condition = z.infer<typeof condition>;

export function conditions() {
  return annotate(z.array(condition).max(16), {
    description: "The latest observations of the resource's state. Ready is always present once reconciled.",
    listType: "map",
    listMapKeys: ["type"],
  });
}

export function observedGeneration() {
  return doc(z.int().min(0), "The .metadata.generation the operator last reconciled.");
}

/** Health checking of upstream servers (shared by PolicyServerCluster and Broker). */
export function healthCheck<const T extends readonly [string, ...string[]]>(types: T, description: string) {
  const base = z.strictObject({
    type: doc(
      z.enum(types).default(types[0]),
      `How a server is checked: ${types.join(" | ")}. Default ${types[0]}.`,
    ),
    path: doc(
      z.string().max(1024).startsWith("/").optional(),
      "HTTP path requested by an http check; required when type is http. A 2xx answer is healthy.",
    ),
    interval: duration("Time between checks of one server. Default 2s.").default("2s"),
    timeout: duration("How long one check may take; must be shorter than interval. Default 1s.").default(
      "1s",
    ),
    unhealthyThreshold: doc(
      z.int().min(1).max(100).default(2),
      "Consecutive failed checks before a server is marked unhealthy. Default 2.",
    ),
    healthyThreshold: doc(
      z.int().min(1).max(100).default(1),
      "Consecutive passed checks before an unhealthy server takes traffic again. Default 1.",
    ),
  });
  const shaped = types.includes("http") ? base : base.omit({ path: true });
  return doc(
    withRules(shaped, [
      {
        rule: "duration(self.timeout) < duration(self.interval)",
        message: "healthCheck.timeout must be shorter than healthCheck.interval",
        fieldPath: ".timeout",
        test: (hc) => ms(hc.timeout) < ms(hc.interval),
      },
      ...(types.includes("http")
        ? [
            {
              rule: "self.type != 'http' || has(self.path)",
              message: "healthCheck.path is required when healthCheck.type is http",
              fieldPath: ".path",
              test: (hc: { type: string; path?: string }) => hc.type !== "http" || hc.path !== undefined,
            },
          ]
        : []),
    ]),
    description,
  ).prefault({});
}

/** An upstream server address with a failover priority. */
export function server(portDescription: string, portRequired: boolean) {
  return z.strictObject({
    host: host("DNS name or IP address of the server."),
    port: portRequired ? port(portDescription) : port(portDescription).optional(),
    priority: priority(),
  });
}

/** Exactly one of two optional fields. */
export function exactlyOne<T extends object>(a: keyof T & string, b: keyof T & string, where: string) {
  return {
    rule: `has(self.${a}) != has(self.${b})`,
    message: `exactly one of ${where}.${a} or ${where}.${b} must be set`,
    test: (self: T) => (self[a] !== undefined) !== (self[b] !== undefined),
  };
}

/** The TLS fields whose combination decides whether the peer is verified. */
interface TlsVerification {
  readonly enabled: boolean;
  readonly caSecretRef?: unknown;
  readonly insecureSkipVerify: boolean;
}

/**
 * `tls.insecureSkipVerify`: connecting without verification is never a default; it is asked for by
 * name. With `enabled` and no CA it is required; with a CA it is a contradiction.
 */
export function insecureSkipVerify(peers: string) {
  return doc(
    z.boolean().default(false),
    `Connect over TLS without verifying the ${peers}: no CA, no name check, so anyone on the path can impersonate them. Required to enable TLS without caSecretRef; not allowed with it. Default false.`,
  );
}

/** TLS on needs a CA, unless insecureSkipVerify says otherwise; a CA and insecureSkipVerify conflict. */
export function tlsVerificationRules(where: string) {
  return [
    {
      rule:
        "!(has(self.enabled) && self.enabled) || has(self.caSecretRef) || " +
        "(has(self.insecureSkipVerify) && self.insecureSkipVerify)",
      message: `${where}.enabled needs ${where}.caSecretRef to verify the peer; set ${where}.insecureSkipVerify: true to connect without verification`,
      fieldPath: ".caSecretRef",
      test: (t: TlsVerification): boolean =>
        !t.enabled || t.caSecretRef !== undefined || t.insecureSkipVerify,
    },
    {
      rule: "!(has(self.insecureSkipVerify) && self.insecureSkipVerify) || !has(self.caSecretRef)",
      message: `${where}.insecureSkipVerify turns verification off: remove it, or remove ${where}.caSecretRef`,
      fieldPath: ".insecureSkipVerify",
      test: (t: TlsVerification): boolean => !t.insecureSkipVerify || t.caSecretRef === undefined,
    },
  ];
}
