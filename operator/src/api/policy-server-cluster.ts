import { z } from "zod";
import {
  conditions,
  doc,
  duration,
  exactlyOne,
  healthCheck,
  insecureSkipVerify,
  localRef,
  observedGeneration,
  podTemplate,
  port,
  secretKeyRef,
  server,
  tlsVerificationRules,
} from "./common.ts";
import { withRules } from "./rules.ts";
import type { KindInfo } from "./kind.ts";

const managed = doc(
  z.strictObject({
    replicas: doc(z.int().min(0).max(100).default(1), "Number of policy-server pods (0..100). Default 1."),
    template: podTemplate("The policy-server pods: a PodTemplateSpec with at least one container."),
  }),
  "Run the policy servers in the cluster: a Deployment and a headless Service named after this resource.",
);

const external = doc(
  z.strictObject({
    servers: doc(
      z.array(server("Port of the server. Default spec.port.", false)).min(1).max(64),
      "The servers of a farm outside the cluster (1..64), each host:port with a failover priority.",
    ),
  }),
  "Policy servers outside the cluster, reached by address.",
);

const tls = doc(
  withRules(
    z.strictObject({
      enabled: doc(z.boolean().default(false), "Connect to the policy servers over TLS. Default false."),
      caSecretRef: secretKeyRef(
        "Secret key holding the CA bundle the servers' certificates must chain to. Required when enabled, unless insecureSkipVerify.",
        "ca.crt",
      ).optional(),
      serverName: doc(
        z.string().max(253).optional(),
        "TLS server name: sent as SNI and, unless insecureSkipVerify, the DNS name the servers' certificates must carry as a subject alt name (a certificate for *.example.com covers a.example.com). Unset: any certificate the CA signed is accepted, whatever its name.",
      ),
      clientCertSecretRef: localRef(
        "A kubernetes.io/tls Secret with the client certificate presented to the servers.",
      ).optional(),
      insecureSkipVerify: insecureSkipVerify("policy servers"),
    }),
    tlsVerificationRules("spec.tls"),
  ),
  "TLS from the sidecars to the policy servers.",
).prefault({});

const failover = doc(
  z.strictObject({
    mode: doc(
      z.enum(["priority", "balanced"]).default("priority"),
      "priority: lower priorities take traffic only while higher ones cannot. balanced: all servers share traffic, priorities ignored. Default priority.",
    ),
  }),
  "How traffic is spread over the servers.",
).prefault({});

const drain = doc(
  z.strictObject({
    preStopDelay: duration(
      "How long a terminating managed policy-server pod keeps serving before its containers get SIGTERM (a preStop sleep, whole seconds, rounded up), so every sidecar has seen it DRAINING first. A container whose template has its own preStop keeps it. Default 5s.",
    ).default("5s"),
    gracePeriod: duration(
      "The pods' terminationGracePeriodSeconds (whole seconds, rounded up): from the start of termination, preStop included, until SIGKILL; at least preStopDelay + 1s. A template that sets terminationGracePeriodSeconds keeps it. Default 30s.",
    ).default("30s"),
  }),
  "Graceful termination of managed policy-server pods (ignored for external servers).",
).prefault({});

export const policyServerClusterSpec = doc(
  withRules(
    z.strictObject({
      protocol: doc(
        z.enum(["tcp", "http"]).default("tcp"),
        "What agents speak to the servers: tcp (opaque, with its own handshake) or http. Default tcp.",
      ),
      port: port("Port the policy servers listen on (1..65535). Required."),
      managed: managed.optional(),
      external: external.optional(),
      tls,
      healthCheck: healthCheck(["tcp", "http"] as const, "How sidecars check each policy server."),
      failover,
      drain,
    }),
    [exactlyOne("managed", "external", "spec")],
  ),
  "The desired state of a PolicyServerCluster.",
);

export const policyServerClusterStatus = z.strictObject({
  observedGeneration: observedGeneration().optional(),
  conditions: conditions().optional(),
  endpoints: doc(
    z.strictObject({
      ready: doc(z.int().min(0), "Servers ready to take traffic."),
      total: doc(z.int().min(0), "Servers declared."),
    }),
    "Ready and total policy-server endpoints.",
  ).optional(),
});

export type PolicyServerClusterSpec = z.infer<typeof policyServerClusterSpec>;
export type PolicyServerClusterStatus = z.infer<typeof policyServerClusterStatus>;

export const policyServerClusterKind: KindInfo = {
  kind: "PolicyServerCluster",
  plural: "policyserverclusters",
  singular: "policyservercluster",
  shortNames: ["psc"],
  description:
    "A PolicyServerCluster declares the servers agents ask for decisions: run in the cluster (managed) or a farm outside it (external).",
  spec: policyServerClusterSpec,
  status: policyServerClusterStatus,
  printerColumns: [
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Protocol", type: "string", jsonPath: ".spec.protocol" },
    { name: "Port", type: "integer", jsonPath: ".spec.port" },
    { name: "Endpoints", type: "integer", jsonPath: ".status.endpoints.ready", description: "Ready servers" },
    { name: "Total", type: "integer", jsonPath: ".status.endpoints.total", priority: 1 },
    {
      name: "Reason",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      priority: 1,
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};
