/**
 * The pod's life around the sidecar, shared by Agent and Broker: how the sidecar drains at
 * shutdown, its access log, the grace period, the Broker's pod settings, and the scale subresource.
 */
import { z } from "zod";
import { doc, duration, ms } from "./common.ts";
import { annotate, type CrossFieldRule } from "./rules.ts";
import type { ScaleSubresource } from "./kind.ts";

export const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;

export const sidecarDrain = doc(
  z.strictObject({
    drainTime: duration(
      "After SIGTERM, the sidecar's listeners keep accepting this long while responses carry Connection: close (the sidecar's --drain-time-s); then in-flight work has until the end of the termination grace period. Default 5s.",
    ).default("5s"),
    strategy: doc(
      z.enum(["gradual", "immediate"]).default("gradual"),
      "Which responses close their connection during the drain time: gradual (a share growing to all, Envoy's default) | immediate (all). Default gradual.",
    ),
  }),
  "How the sidecar drains when its pod stops.",
).prefault({});

export const sidecarAccessLog = doc(
  z.strictObject({
    enabled: doc(
      z.boolean().default(false),
      "Write one line per request (HTTP) or connection (TCP). Default false.",
    ),
    format: doc(
      z.enum(["json", "text"]).default("json"),
      "json: one JSON object per line with Envoy's operators as values; text: Envoy's default text format. Default json.",
    ),
    path: doc(
      z
        .string()
        .min(1)
        .max(1024)
        .regex(/^\//, { message: "must be an absolute path" })
        .default("/dev/stdout"),
      "Where the lines go: /dev/stdout (the container log) or a file path in the sidecar container. Default /dev/stdout.",
    ),
  }),
  "The sidecar's access log (Envoy's access_log on its listeners); off by default.",
).prefault({});

export const sidecarXds = doc(
  z.strictObject({
    enabled: doc(
      z.boolean().default(true),
      "Take config and endpoints from the operator over xDS (pushed within a second of a change) when the operator serves xDS. false: the sidecar runs the bootstrap ConfigMap alone, refreshed through the ConfigMap volume (the kubelet's sync period, commonly a minute), with endpoints from DNS. Default true.",
    ),
  }),
  "Whether the sidecar subscribes to the operator's xDS server.",
).prefault({});

export function terminationGracePeriodSeconds(what: string): z.ZodOptional<z.ZodInt> {
  return doc(
    z.int().min(1).max(3600),
    `Seconds the ${what} pods get to stop (the pod's terminationGracePeriodSeconds, also the sidecar's deadline for in-flight work). Must exceed sidecar.drain.drainTime. Default: the template's, else 30.`,
  ).optional();
}

/** terminationGracePeriodSeconds, when set, leaves in-flight work time after the drain time. */
export function graceAfterDrainRule<
  T extends { terminationGracePeriodSeconds?: number | undefined; sidecar: { drain: { drainTime: string } } },
>(): CrossFieldRule<T> {
  return {
    // Whole seconds on both sides: with an integer grace period, drainTime < grace ⇔ floor(drainTime) < grace.
    rule: "!has(self.terminationGracePeriodSeconds) || duration(self.sidecar.drain.drainTime).getSeconds() < self.terminationGracePeriodSeconds",
    message: "sidecar.drain.drainTime must be shorter than terminationGracePeriodSeconds",
    fieldPath: ".terminationGracePeriodSeconds",
    test: (s) =>
      s.terminationGracePeriodSeconds === undefined ||
      ms(s.sidecar.drain.drainTime) < s.terminationGracePeriodSeconds * 1000,
  };
}

const stringMap = z.record(z.string(), z.string());

/** The Broker's pods: what a cluster operator needs to place and size them, nothing that changes what runs. */
export const brokerPodTemplate = doc(
  z.strictObject({
    metadata: doc(
      z.strictObject({
        labels: doc(stringMap, "Extra pod labels (the selector labels always win).").optional(),
        annotations: doc(stringMap, "Extra pod annotations.").optional(),
      }),
      "Labels and annotations for the broker pods.",
    ).optional(),
    resources: annotate(z.looseObject({}), {
      description: "Compute resources of the tether-sidecar container (core/v1 ResourceRequirements).",
      preserveUnknownFields: true,
    }).optional(),
    nodeSelector: doc(stringMap, "The pods' nodeSelector.").optional(),
    tolerations: doc(
      z
        .array(
          annotate(z.looseObject({}), { description: "A core/v1 Toleration.", preserveUnknownFields: true }),
        )
        .max(64),
      "The pods' tolerations.",
    ).optional(),
    affinity: annotate(z.looseObject({}), {
      description: "The pods' affinity (core/v1 Affinity).",
      preserveUnknownFields: true,
    }).optional(),
    imagePullSecrets: doc(
      z
        .array(
          z.strictObject({ name: doc(z.string().min(1).max(253), "Name of a Secret in the namespace.") }),
        )
        .max(16),
      "Secrets to pull the sidecar image with.",
    ).optional(),
    priorityClassName: doc(z.string().min(1).max(253), "The pods' priorityClassName.").optional(),
  }),
  "Placement and sizing of the broker pods (resources, nodeSelector, tolerations, affinity, imagePullSecrets, priorityClassName).",
).prefault({});

/** `kubectl scale` and HorizontalPodAutoscalers work on the resource; the operator follows spec.replicas. */
export const SCALE_SUBRESOURCE: ScaleSubresource = {
  specReplicasPath: ".spec.replicas",
  statusReplicasPath: ".status.replicas",
  labelSelectorPath: ".status.selector",
};

/** A label selector as the scale subresource reports it: `k=v,k2=v2`. */
export function labelSelectorString(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
