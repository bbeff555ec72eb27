import type { z } from "zod";

/** A column of `kubectl get` output. */
export interface PrinterColumn {
  readonly name: string;
  readonly type: "string" | "integer" | "number" | "boolean" | "date";
  readonly jsonPath: string;
  readonly description?: string;
  /** 0 shows in the default view; 1 only with `-o wide`. */
  readonly priority?: number;
}

/** The CRD's scale subresource: where replicas and the pods' selector live. */
export interface ScaleSubresource {
  readonly specReplicasPath: string;
  readonly statusReplicasPath: string;
  readonly labelSelectorPath: string;
}

/** Everything the CRD generator and the operator need to know about one kind. */
export interface KindInfo {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly description: string;
  readonly spec: z.ZodType;
  readonly status: z.ZodType;
  readonly printerColumns: readonly PrinterColumn[];
  /** A scale subresource (kubectl scale, HorizontalPodAutoscaler), when the kind has replicas. */
  readonly scale?: ScaleSubresource;
}
