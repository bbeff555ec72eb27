import { z } from "zod";
import {
  conditions,
  doc,
  duration,
  exactlyOne,
  insecureSkipVerify,
  localRef,
  ms,
  observedGeneration,
  port,
  secretKeyRef,
  server,
  tlsVerificationRules,
} from "./common.ts";
import { annotate, withRules } from "./rules.ts";
import type { KindInfo } from "./kind.ts";

const urlPath = (description: string): z.ZodString =>
  doc(z.string().min(1).max(1024).startsWith("/", { message: "must start with /" }), description);

export const HTTP_METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "TRACE",
  "CONNECT",
] as const;

const match = doc(
  withRules(
    z.strictObject({
      pathPrefix: urlPath("Requests whose path starts with this prefix, e.g. /weblogic/.").optional(),
      path: urlPath("Requests for exactly this path.").optional(),
      extensions: annotate(
        z
          .array(
            doc(
              z
                .string()
                .min(1)
                .max(32)
                .regex(/^[A-Za-z0-9]+$/, { message: "must be a file extension without the dot, e.g. jsp" }),
              "A file extension without the dot.",
            ),
          )
          .min(1)
          .max(32),
        {
          description: "Proxy by MIME type: requests whose path ends in one of these extensions, e.g. [jsp].",
          listType: "set",
        },
      ).optional(),
    }),
    [
      {
        rule: "[has(self.pathPrefix), has(self.path), has(self.extensions)].filter(x, x).size() == 1",
        message: "exactly one of spec.match.pathPrefix, spec.match.path or spec.match.extensions must be set",
        test: (m) => [m.pathPrefix, m.path, m.extensions].filter((x) => x !== undefined).length === 1,
      },
    ],
  ),
  "Which requests this route takes: exactly one of pathPrefix, path or extensions. Required.",
);

const backend = doc(
  withRules(
    z.strictObject({
      servers: doc(
        z.array(server("Port of the backend server. Required.", true)).min(1).max(64),
        "Backend servers (1..64) with priorities: 0 primary, 1 secondary, ...",
      ).optional(),
      serviceRef: doc(
        localRef("A Service whose endpoints are the backends.").extend({
          port: port("Port of the Service to connect to. Required."),
        }),
        "A Service in the same namespace whose endpoints are the backends.",
      ).optional(),
    }),
    [exactlyOne("servers", "serviceRef", "spec.backend")],
  ),
  "Where matching requests go: exactly one of servers or serviceRef. Required.",
);

const timeouts = doc(
  withRules(
    z.strictObject({
      connect: duration("How long one connection attempt may take. Default 10s.").default("10s"),
      retryInterval: duration("Wait between connection attempts. Default 2s.").default("2s"),
      request: duration("The whole request, retries included; then 503. Default 30s.").default("30s"),
    }),
    [
      {
        rule: "duration(self.connect) <= duration(self.request)",
        message: "timeouts.connect must not exceed timeouts.request",
        fieldPath: ".connect",
        test: (t) => ms(t.connect) <= ms(t.request),
      },
    ],
  ),
  "Connect, retry and request timeouts.",
).prefault({});

const retries = doc(
  z.strictObject({
    attempts: doc(z.int().min(0).max(10).default(3), "Retries after the first try (0..10). Default 3."),
    onReset: doc(
      z.enum(["idempotentOnly", "never"]).default("idempotentOnly"),
      "Retry a request whose connection broke after it was sent: idempotentOnly (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) | never. Requests never sent are always retried. Default idempotentOnly.",
    ),
  }),
  "Retries; only where safe.",
).prefault({});

const keepAlive = doc(
  z.strictObject({
    enabled: doc(z.boolean().default(true), "Reuse connections to the backend. Default true."),
    idleTimeout: duration("Close a backend connection idle this long. Default 30s.").default("30s"),
  }),
  "Keep-alive connection pool to the backend.",
).prefault({});

export const proxyRouteSpec = doc(
  withRules(
    z.strictObject({
      agentRef: localRef("The Agent whose sidecar serves this route. Required."),
      listenerPort: port("The sidecar's inbound HTTP port for this route. Default 8080.").default(8080),
      match,
      methods: annotate(z.array(z.enum(HTTP_METHODS)).min(1).max(9), {
        description: "Only requests with these methods; default all.",
        listType: "set",
      }).optional(),
      rewrite: doc(
        z.strictObject({
          pathTrim: urlPath(
            "Remove this prefix from the request path; must be a prefix of match.pathPrefix or match.path.",
          ).optional(),
          pathPrepend: urlPath("Add this prefix to the request path (after pathTrim).").optional(),
        }),
        "Path rewriting before the request is forwarded.",
      ).optional(),
      backend,
      timeouts,
      retries,
      keepAlive,
      sessionAffinity: doc(
        z.strictObject({
          cookieName: doc(
            z
              .string()
              .min(1)
              .max(128)
              .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: "must be a cookie name (an HTTP token)" }),
            "Sticky sessions: requests with the same value of this cookie reach the same server while it is healthy.",
          ),
        }),
        "Sticky sessions; absent = none.",
      ).optional(),
      tls: doc(
        withRules(
          z.strictObject({
            enabled: doc(
              z.boolean().default(false),
              "Connect to the backend over TLS, verified with caSecretRef (or, only with insecureSkipVerify, unverified). Default false.",
            ),
            caSecretRef: secretKeyRef(
              "Secret key holding the CA bundle the backend's certificate must chain to. Required when enabled, unless insecureSkipVerify.",
              "ca.crt",
            ).optional(),
            serverName: doc(
              z.string().max(253).optional(),
              "TLS server name: sent as SNI and, unless insecureSkipVerify, the DNS name the backend's certificate must carry as a subject alt name (a certificate for *.example.com covers a.example.com). Unset: any certificate the CA signed is accepted, whatever its name.",
            ),
            insecureSkipVerify: insecureSkipVerify("backend servers"),
          }),
          tlsVerificationRules("spec.tls"),
        ),
        "TLS to the backend.",
      ).prefault({}),
    }),
    [
      {
        rule:
          "!has(self.rewrite) || !has(self.rewrite.pathTrim) || " +
          "(has(self.match.pathPrefix) && self.match.pathPrefix.startsWith(self.rewrite.pathTrim)) || " +
          "(has(self.match.path) && self.match.path.startsWith(self.rewrite.pathTrim))",
        message: "rewrite.pathTrim must be a prefix of match.pathPrefix or match.path",
        fieldPath: ".rewrite.pathTrim",
        test: (r) => {
          const trim = r.rewrite?.pathTrim;
          if (trim === undefined) return true;
          return (r.match.pathPrefix?.startsWith(trim) ?? false) || (r.match.path?.startsWith(trim) ?? false);
        },
      },
    ],
  ),
  "The desired state of a ProxyRoute.",
);

export const proxyRouteStatus = z.strictObject({
  observedGeneration: observedGeneration().optional(),
  conditions: conditions().optional(),
});

export type ProxyRouteSpec = z.infer<typeof proxyRouteSpec>;
export type ProxyRouteStatus = z.infer<typeof proxyRouteStatus>;

export const proxyRouteKind: KindInfo = {
  kind: "ProxyRoute",
  plural: "proxyroutes",
  singular: "proxyroute",
  // Not "agent" / "broker": ECK's Agent and Knative's Broker use the plain names.
  shortNames: ["troute"],
  description:
    "A ProxyRoute sends HTTP requests from an Agent's sidecar to backend servers, by path prefix, exact path or file extension.",
  spec: proxyRouteSpec,
  status: proxyRouteStatus,
  printerColumns: [
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Agent", type: "string", jsonPath: ".spec.agentRef.name" },
    { name: "Port", type: "integer", jsonPath: ".spec.listenerPort" },
    { name: "Prefix", type: "string", jsonPath: ".spec.match.pathPrefix" },
    { name: "Path", type: "string", jsonPath: ".spec.match.path", priority: 1 },
    { name: "Extensions", type: "string", jsonPath: ".spec.match.extensions", priority: 1 },
    {
      name: "Reason",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      priority: 1,
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
