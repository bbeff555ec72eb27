// ADS on the wire: DiscoveryRequest / DiscoveryResponse in protobuf, and the gRPC method
// envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources with our own
// (de)serializers, so no .proto parsing happens at run time.
import type { MethodDefinition } from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { messageType } from "./descriptor.ts";

export const ADS_METHOD_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

export interface WireNode {
  readonly id: string;
  readonly cluster: string;
  readonly user_agent_name?: string;
  readonly user_agent_version?: string;
}

export interface DiscoveryRequest {
  readonly version_info: string;
  readonly node?: WireNode;
  readonly resource_names: readonly string[];
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: { readonly code: number; readonly message: string };
}

export interface WireAny {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export interface DiscoveryResponse {
  readonly version_info: string;
  readonly resources: readonly WireAny[];
  readonly type_url: string;
  readonly nonce: string;
  readonly control_plane?: { readonly identifier: string };
}

type Obj = Record<string, unknown>;
let requestType: protobuf.Type | undefined;
let responseType: protobuf.Type | undefined;

function requestT(): protobuf.Type {
  return (requestType ??= messageType("envoy.service.discovery.v3.DiscoveryRequest"));
}
function responseT(): protobuf.Type {
  return (responseType ??= messageType("envoy.service.discovery.v3.DiscoveryResponse"));
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

export function encodeRequest(request: DiscoveryRequest): Buffer {
  return Buffer.from(requestT().encode(request as unknown as Obj).finish());
}

/** A decoded request; the node keeps only what the server uses (id, cluster). */
export function decodeRequest(bytes: Buffer): DiscoveryRequest {
  const m = requestT().decode(bytes) as unknown as Obj;
  const node = m["node"] as Obj | undefined;
  const error = m["error_detail"] as Obj | undefined;
  return {
    version_info: str(m["version_info"]),
    ...(node === undefined || node === null ? {} : { node: { id: str(node["id"]), cluster: str(node["cluster"]) } }),
    resource_names: (m["resource_names"] as string[] | undefined) ?? [],
    type_url: str(m["type_url"]),
    response_nonce: str(m["response_nonce"]),
    ...(error === undefined || error === null
      ? {}
      : { error_detail: { code: Number(error["code"] ?? 0), message: str(error["message"]) } }),
  };
}

export function encodeResponse(response: DiscoveryResponse): Buffer {
  return Buffer.from(responseT().encode(response as unknown as Obj).finish());
}

export function decodeResponse(bytes: Buffer): DiscoveryResponse {
  const m = responseT().decode(bytes) as unknown as Obj;
  return {
    version_info: str(m["version_info"]),
    resources: ((m["resources"] as Obj[] | undefined) ?? []).map((r) => ({
      type_url: str(r["type_url"]),
      value: (r["value"] as Uint8Array | undefined) ?? new Uint8Array(),
    })),
    type_url: str(m["type_url"]),
    nonce: str(m["nonce"]),
  };
}

/** The gRPC method, for grpc-js' Server.addService and Client.makeBidiStreamRequest. */
export const ADS_METHOD: MethodDefinition<DiscoveryRequest, DiscoveryResponse> = {
  path: ADS_METHOD_PATH,
  requestStream: true,
  responseStream: true,
  requestSerialize: encodeRequest,
  requestDeserialize: decodeRequest,
  responseSerialize: encodeResponse,
  responseDeserialize: decodeResponse,
};
