import { z } from "zod";
import { conditions, doc, duration, localRef, ms, observedGeneration, podTemplate, port } from "./common.ts";
import {
  graceAfterDrainRule,
  SCALE_SUBRESOURCE,
  sidecarAccessLog,
  sidecarXds,
  sidecarDrain,
  terminationGracePeriodSeconds,
} from "./lifecycle.ts";
import { annotate, withRules } from "./rules.ts";
import type { KindInfo } from "./kind.ts";

const listener = doc(
  z.strictObject({
    port: port(
      "127.0.0.1 port in the pod where the sidecar accepts the agent's connections to the policy servers. Default: the PolicyServerCluster's port.",
    ).optional(),
  }),
  "Where the agent connects: the sidecar's local listener.",
).prefault({});

const pool = doc(
  z.strictObject({
    maxConnections: doc(
      z.int().min(1).max(1_000_000).default(1024),
      "Maximum connections from one sidecar to one policy server. Default 1024.",
    ),
    idleTimeout: duration(
      "Close an upstream connection idle this long; below typical server keep-alive so the server never closes first. Default 30s.",
    ).default("30s"),
    maxRequestsPerConnection: doc(
      z.int().min(0).max(1_000_000).default(0),
      "Requests sent over one upstream connection before it is replaced; 0 = unlimited. Default 0.",
    ),
  }),
  "The sidecar's keep-alive connection pool to the policy servers.",
).prefault({});

const reconnect = doc(
  withRules(
    z.strictObject({
      connectTimeout: duration("How long one connection attempt may take. Default 5s.").default("5s"),
      retryInterval: duration("First back-off step between attempts. Default 250ms.").default("250ms"),
      maxRetryInterval: duration("Back-off ceiling between attempts. Default 2s.").default("2s"),
      holdTimeout: duration(
        "How long requests and new connections wait while no policy server answers, before they fail. Default 30s.",
      ).default("30s"),
      perTryTimeout: duration(
        "How long one attempt of an idempotent HTTP request (not POST, PATCH or CONNECT) waits for the policy server's answer before it is retried on another server — what keeps requests moving when a server's node is lost and its connections hang. 0s turns it off. Default 500ms.",
      ).default("500ms"),
    }),
    [
      {
        rule: "duration(self.retryInterval) <= duration(self.maxRetryInterval)",
        message: "reconnect.retryInterval must not exceed reconnect.maxRetryInterval",
        fieldPath: ".retryInterval",
        test: (r) => ms(r.retryInterval) <= ms(r.maxRetryInterval),
      },
      {
        rule: "duration(self.perTryTimeout) <= duration(self.holdTimeout)",
        message: "reconnect.perTryTimeout must not exceed reconnect.holdTimeout",
        fieldPath: ".perTryTimeout",
        test: (r) => ms(r.perTryTimeout) <= ms(r.holdTimeout),
      },
      {
        rule: "duration(self.connectTimeout) <= duration(self.holdTimeout)",
        message: "reconnect.connectTimeout must not exceed reconnect.holdTimeout",
        fieldPath: ".connectTimeout",
        test: (r) => ms(r.connectTimeout) <= ms(r.holdTimeout),
      },
    ],
  ),
  "How the sidecar reconnects, and holds traffic, when policy servers restart or fail.",
).prefault({});

const cache = doc(
  z.strictObject({
    enabled: doc(z.boolean().default(false), "Cache policy decisions in the sidecar. Default false."),
    ttl: duration("How long a cached decision is used. Default 3m.").default("3m"),
    notifications: doc(
      z.boolean().default(true),
      "Hybrid mode: server notifications (logout, policy change) invalidate entries at once. Default true.",
    ),
    keyHeaders: annotate(
      z
        .array(
          z
            .string()
            .min(1)
            .max(128)
            .regex(/^[!#$%&'*+.^_`|~0-9a-z-]+$/, { message: "must be a lower-case HTTP header name" }),
        )
        .max(16)
        .default(["authorization", "cookie"]),
      {
        description:
          "Request headers (lower case) whose values, with the method, path, Host, the x-session-id header and Authorization (always), tell one user's cached decision from another's; every value of a header sent twice counts. List each header the policy servers decide on. Default [authorization, cookie].",
        listType: "set",
      },
    ),
  }),
  "The decision cache; only for PolicyServerClusters with protocol http.",
).prefault({});

const agentConfig = annotate(
  withRules(z.record(z.string(), z.string().max(1_048_576)), [
    {
      rule: "self.all(k, k.matches('^[-._a-zA-Z0-9]+$') && size(k) <= 253)",
      message: "agentConfig keys must be file names: letters, digits, '-', '_' and '.'",
      test: (m) => Object.keys(m).every((k) => /^[-._a-zA-Z0-9]+$/.test(k) && k.length <= 253),
    },
  ]),
  {
    description:
      "Agent configuration (key → value), mounted as files under /etc/tether/agent in the agent containers.",
  },
);

const sidecar = doc(
  z.strictObject({
    image: doc(
      z.string().max(1024).optional(),
      "Sidecar container image. Default: the image the operator is configured with.",
    ),
    adminPort: port(
      "Port on the pod IP serving the sidecar admin's read-only GET /ready, /stats/prometheus and /metrics (probes, PodMonitor); every other path gets 404. Default 9901.",
    ).default(9901),
    localAdminPort: port(
      "Port of the sidecar's full admin interface (/config_dump, /clusters, POST /notifications), bound to 127.0.0.1 so only the pod's own containers reach it; adminPort serves its read-only GET /ready, /stats/prometheus and /metrics. Default 15000.",
    ).default(15000),
    resources: annotate(z.looseObject({}), {
      description: "Compute resources of the sidecar container (core/v1 ResourceRequirements).",
      preserveUnknownFields: true,
    }).optional(),
    drain: sidecarDrain,
    accessLog: sidecarAccessLog,
    xds: sidecarXds,
  }),
  "The tether-sidecar container added to every agent pod.",
).prefault({});

export const agentSpec = doc(
  withRules(
    z.strictObject({
      policyServerClusterRef: localRef("The PolicyServerCluster this agent talks to. Required."),
      replicas: doc(z.int().min(0).max(100).default(1), "Number of agent pods (0..100). Default 1."),
      template: podTemplate("The agent (web server) pods: a PodTemplateSpec; the sidecar is added to it."),
      listener,
      pool,
      reconnect,
      cache,
      agentConfig: agentConfig.optional(),
      sidecar,
      terminationGracePeriodSeconds: terminationGracePeriodSeconds("agent"),
    }),
    [
      {
        rule: "!has(self.listener.port) || self.listener.port != self.sidecar.adminPort",
        message: "listener.port and sidecar.adminPort must differ",
        fieldPath: ".listener.port",
        test: (a) => a.listener.port === undefined || a.listener.port !== a.sidecar.adminPort,
      },
      {
        rule: "!has(self.listener.port) || self.listener.port != self.sidecar.localAdminPort",
        message: "listener.port and sidecar.localAdminPort must differ",
        fieldPath: ".listener.port",
        test: (a) => a.listener.port === undefined || a.listener.port !== a.sidecar.localAdminPort,
      },
      {
        rule: "self.sidecar.adminPort != self.sidecar.localAdminPort",
        message: "sidecar.adminPort and sidecar.localAdminPort must differ",
        fieldPath: ".sidecar.localAdminPort",
        test: (a) => a.sidecar.adminPort !== a.sidecar.localAdminPort,
      },
      graceAfterDrainRule(),
    ],
  ),
  "The desired state of an Agent.",
);

export const agentStatus = z.strictObject({
  observedGeneration: observedGeneration().optional(),
  conditions: conditions().optional(),
  replicas: doc(z.int().min(0), "Agent pods that exist.").optional(),
  readyReplicas: doc(z.int().min(0), "Agent pods ready (agent and sidecar).").optional(),
  selector: doc(
    z.string(),
    "The agent pods' label selector (k=v,...), for the scale subresource.",
  ).optional(),
});

export type AgentSpec = z.infer<typeof agentSpec>;
export type AgentStatus = z.infer<typeof agentStatus>;

export const agentKind: KindInfo = {
  kind: "Agent",
  plural: "agents",
  singular: "agent",
  // Not "agent" / "broker": ECK's Agent and Knative's Broker use the plain names.
  shortNames: ["tagent"],
  description:
    "An Agent is a web agent workload plus the tether-sidecar that keeps it connected to its policy servers.",
  spec: agentSpec,
  status: agentStatus,
  scale: SCALE_SUBRESOURCE,
  printerColumns: [
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Policy Servers", type: "string", jsonPath: ".spec.policyServerClusterRef.name" },
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Available", type: "integer", jsonPath: ".status.readyReplicas" },
    {
      name: "Reason",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      priority: 1,
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
