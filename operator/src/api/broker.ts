import { z } from "zod";
import {
  conditions,
  doc,
  duration,
  exactlyOne,
  healthCheck,
  localRef,
  observedGeneration,
  port,
  server,
} from "./common.ts";
import {
  brokerPodTemplate,
  graceAfterDrainRule,
  SCALE_SUBRESOURCE,
  sidecarAccessLog,
  sidecarXds,
  sidecarDrain,
  terminationGracePeriodSeconds,
} from "./lifecycle.ts";
import { withRules } from "./rules.ts";
import type { KindInfo } from "./kind.ts";

const backends = doc(
  withRules(
    z.strictObject({
      servers: doc(
        z.array(server("Port of the backend server. Required.", true)).min(1).max(64),
        "Backend servers (1..64), each host:port with a failover priority.",
      ).optional(),
      serviceRef: doc(
        localRef("A Service whose endpoints are the backends.").extend({
          port: port("Port of the Service to connect to. Required."),
        }),
        "A Service in the same namespace whose endpoints are the backends.",
      ).optional(),
    }),
    [exactlyOne("servers", "serviceRef", "spec.backends")],
  ),
  "The servers the broker forwards connections to: exactly one of servers or serviceRef. Required.",
);

const brokerSidecar = doc(
  z.strictObject({
    image: doc(
      z.string().max(1024).optional(),
      "Sidecar container image. Default: the image the operator is configured with.",
    ),
    drain: sidecarDrain,
    accessLog: sidecarAccessLog,
    xds: sidecarXds,
  }),
  "The tether-sidecar container that is the broker.",
).prefault({});

export const brokerSpec = doc(
  withRules(
    z.strictObject({
      port: port(
        "Port the broker listens on (1..65535). Required. The sidecar's admin takes 9901 (public: GET /ready, /stats/prometheus, /metrics) and 15000 (127.0.0.1 only), or 9902 and 15001 when port is one of them.",
      ),
      backends,
      balance: doc(
        z.enum(["roundRobin", "leastConnections"]).default("roundRobin"),
        "How new connections are spread over healthy backends: roundRobin | leastConnections. Default roundRobin.",
      ),
      tls: doc(
        z.strictObject({
          mode: doc(
            z.enum(["passthrough"]).default("passthrough"),
            "passthrough: the client's TLS session ends at the backend; the broker forwards bytes untouched. Default passthrough.",
          ),
        }),
        "How the broker treats TLS.",
      ).prefault({}),
      healthCheck: healthCheck(
        ["tcp", "tls"] as const,
        "How the broker checks each backend: tcp connect, or tls (a full TLS handshake; the backend's certificate is not verified, the check proves it speaks TLS).",
      ),
      proxyProtocol: doc(
        z.enum(["none", "v2"]).default("none"),
        "Send a PROXY protocol v2 header to the backend so it sees the client's address: none | v2. Default none.",
      ),
      idleTimeout: duration(
        "Close a connection with no bytes in either direction for this long. Default 1h.",
      ).default("1h"),
      replicas: doc(z.int().min(0).max(100).default(1), "Number of broker pods (0..100). Default 1."),
      service: doc(
        z.strictObject({
          type: doc(
            z.enum(["ClusterIP", "NodePort", "LoadBalancer"]).default("ClusterIP"),
            "Type of the broker's Service. Default ClusterIP.",
          ),
          port: port("Port of the broker's Service. Default spec.port.").optional(),
        }),
        "The Service in front of the broker pods.",
      ).prefault({}),
      podTemplate: brokerPodTemplate,
      sidecar: brokerSidecar,
      terminationGracePeriodSeconds: terminationGracePeriodSeconds("broker"),
    }),
    [graceAfterDrainRule()],
  ),
  "The desired state of a Broker.",
);

export const brokerStatus = z.strictObject({
  observedGeneration: observedGeneration().optional(),
  conditions: conditions().optional(),
  replicas: doc(z.int().min(0), "Broker pods that exist.").optional(),
  readyReplicas: doc(z.int().min(0), "Broker pods ready.").optional(),
  selector: doc(
    z.string(),
    "The broker pods' label selector (k=v,...), for the scale subresource.",
  ).optional(),
  backends: doc(
    z.strictObject({
      ready: doc(z.int().min(0), "Backends ready to take connections."),
      total: doc(z.int().min(0), "Backends declared or discovered."),
    }),
    "Ready and total backends.",
  ).optional(),
});

export type BrokerSpec = z.infer<typeof brokerSpec>;
export type BrokerStatus = z.infer<typeof brokerStatus>;

export const brokerKind: KindInfo = {
  kind: "Broker",
  plural: "brokers",
  singular: "broker",
  // Not "agent" / "broker": ECK's Agent and Knative's Broker use the plain names.
  shortNames: ["tbroker"],
  description:
    "A Broker is a TCP proxy in front of backend servers: TLS passes through untouched, backends are health-checked.",
  spec: brokerSpec,
  status: brokerStatus,
  scale: SCALE_SUBRESOURCE,
  printerColumns: [
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Port", type: "integer", jsonPath: ".spec.port" },
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
