// Validates xDS resources (Envoy's JSON form) with the same schemas as the file config: a cluster
// through the cluster schema, a listener through the listener schema, a ClusterLoadAssignment
// through its schema, plus the cross-checks the bootstrap makes. Every problem names its resource
// and field path; any problem rejects the whole response (what Envoy NACKs with error_detail).
import { isIP } from "node:net";
import type { z } from "zod";
import { describeIssue } from "../config/load.ts";
import {
  clusterLoadAssignmentSchema,
  clusterProblems,
  clusterSchema,
  listenerProblems,
  listenerSchema,
  type ClusterConfig,
  type ClusterLoadAssignmentConfig,
  type ListenerConfig,
} from "@tether/envoy";
import type { ResourceJson, ResourceType } from "./ads-api.ts";

export const TYPE_URLS: Readonly<Record<ResourceType, string>> = {
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
};

/** A resource as accepted: its parsed form, its JSON as received (for /config_dump), its version. */
export interface AcceptedResource<T> {
  readonly config: T;
  readonly raw: ResourceJson;
  readonly version: string;
  readonly lastUpdated: string;
}

export type Validated<T> =
  | { readonly ok: true; readonly resources: Map<string, AcceptedResource<T>> }
  | { readonly ok: false; readonly problems: string[] };

const LABELS: Record<ResourceType, string> = {
  cluster: "cluster",
  endpoint: "ClusterLoadAssignment",
  listener: "listener",
  route: "RouteConfiguration",
};

/** The resource without a top-level "@type" naming its own type (an Any's JSON form carries one). */
function unwrap(type: ResourceType, name: string, json: ResourceJson, problems: string[]): unknown {
  const { "@type": typeUrl, ...rest } = json;
  if (typeUrl !== undefined && typeUrl !== TYPE_URLS[type]) {
    problems.push(
      `${LABELS[type]} "${name}": @type: expected ${TYPE_URLS[type]}, got ${JSON.stringify(typeUrl)}`,
    );
  }
  return rest;
}

function parseEach<S extends z.ZodType>(
  type: ResourceType,
  schema: S,
  resources: ReadonlyMap<string, ResourceJson>,
  nameOf: (parsed: z.output<S>) => string,
  problems: string[],
): Map<string, { config: z.output<S>; raw: ResourceJson }> {
  const out = new Map<string, { config: z.output<S>; raw: ResourceJson }>();
  for (const [name, json] of resources) {
    const result = schema.safeParse(unwrap(type, name, json, problems));
    if (!result.success) {
      for (const issue of result.error.issues) {
        for (const line of describeIssue(issue)) problems.push(`${LABELS[type]} "${name}": ${line}`);
      }
      continue;
    }
    const config = result.data;
    if (nameOf(config) !== name) {
      problems.push(`${LABELS[type]} "${name}": its name field says "${nameOf(config)}"`);
      continue;
    }
    out.set(name, { config, raw: json });
  }
  return out;
}

function stamp<T>(
  parsed: Map<string, { config: T; raw: ResourceJson }>,
  version: string,
  now: Date,
): Map<string, AcceptedResource<T>> {
  const lastUpdated = now.toISOString();
  return new Map([...parsed].map(([name, p]) => [name, { ...p, version, lastUpdated }]));
}

function pathText(path: readonly (string | number)[]): string {
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : out === "" ? part : `.${part}`;
  return out;
}

/** CDS: every cluster valid alone; none may take the ADS cluster's name (the stream runs over it). */
export function validateClusters(
  resources: ReadonlyMap<string, ResourceJson>,
  version: string,
  adsCluster: string,
  now: Date = new Date(),
): Validated<ClusterConfig> {
  const problems: string[] = [];
  const parsed = parseEach("cluster", clusterSchema, resources, (c) => c.name, problems);
  for (const [name, { config }] of parsed) {
    if (name === adsCluster) {
      problems.push(`cluster "${name}": the ADS cluster is static; the control plane cannot replace it`);
    }
    for (const p of clusterProblems(config, adsCluster)) {
      problems.push(`cluster "${name}": ${pathText(p.path)}: ${p.message}`);
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, resources: stamp(parsed, version, now) };
}

/**
 * LDS: every listener valid alone, and every cluster it names known (dynamic clusters or the static
 * ones that stay); `clusterNames` undefined skips that check (no CDS response has arrived yet).
 */
export function validateListeners(
  resources: ReadonlyMap<string, ResourceJson>,
  version: string,
  clusterNames: ReadonlySet<string> | undefined,
  now: Date = new Date(),
): Validated<ListenerConfig> {
  const problems: string[] = [];
  const parsed = parseEach("listener", listenerSchema, resources, (l) => l.name, problems);
  const addresses = new Map<string, string>();
  for (const [name, { config }] of parsed) {
    for (const p of clusterNames === undefined ? [] : listenerProblems(config, clusterNames)) {
      problems.push(`listener "${name}": ${pathText(p.path)}: ${p.message}`);
    }
    const sa = config.address.socket_address;
    const key = `${sa.address}:${sa.port_value}`;
    const other = addresses.get(key);
    if (sa.port_value !== 0 && other !== undefined) {
      problems.push(`listener "${name}": address: ${key} is also the address of listener "${other}"`);
    }
    addresses.set(key, name);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, resources: stamp(parsed, version, now) };
}

/** EDS: every ClusterLoadAssignment valid; endpoints must be IP addresses (no DNS in EDS). */
export function validateAssignments(
  resources: ReadonlyMap<string, ResourceJson>,
  version: string,
  now: Date = new Date(),
): Validated<ClusterLoadAssignmentConfig> & { readonly rejectedNames?: readonly string[] } {
  const problems: string[] = [];
  const rejected = new Set<string>();
  const parsed = parseEach(
    "endpoint",
    clusterLoadAssignmentSchema,
    resources,
    (a) => a.cluster_name,
    problems,
  );
  for (const name of resources.keys()) if (!parsed.has(name)) rejected.add(name);
  for (const [name, { config }] of parsed) {
    config.endpoints.forEach((loc, i) => {
      loc.lb_endpoints.forEach((ep, j) => {
        const addr = ep.endpoint.address.socket_address.address;
        if (isIP(addr) === 0) {
          rejected.add(name);
          problems.push(
            `ClusterLoadAssignment "${name}": endpoints[${i}].lb_endpoints[${j}].endpoint.address.socket_address.address: EDS endpoints need an IP address, got "${addr}"`,
          );
        }
      });
    });
  }
  if (problems.length > 0) return { ok: false, problems, rejectedNames: [...rejected] };
  return { ok: true, resources: stamp(parsed, version, now) };
}
