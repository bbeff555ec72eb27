// ADS on the wire: DiscoveryRequest / DiscoveryResponse in protobuf, written and read field by field
// (the few fields ADS uses; anything else is skipped as protobuf skips unknown fields), and the gRPC
// method envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources with these
// (de)serializers. No descriptor is loaded for them.
import type { MethodDefinition } from "@grpc/grpc-js";
import { LEN, Reader, VARINT, Writer } from "./protowire.ts";

export const ADS_METHOD_PATH =
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

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

function nodeMessage(node: WireNode): Buffer {
  const w = new Writer();
  if (node.id !== "") w.string(1, node.id);
  if (node.cluster !== "") w.string(2, node.cluster);
  if (node.user_agent_name !== undefined && node.user_agent_name !== "") w.string(6, node.user_agent_name);
  // A oneof member: written even when empty, as its presence is what it says.
  if (node.user_agent_version !== undefined) w.string(7, node.user_agent_version);
  return w.finish();
}

// envoy.service.discovery.v3.DiscoveryRequest: version_info = 1, node = 2, resource_names = 3,
// type_url = 4, response_nonce = 5, error_detail = 6 (google.rpc.Status: code = 1, message = 2).
export function encodeRequest(request: DiscoveryRequest): Buffer {
  const w = new Writer();
  if (request.version_info !== "") w.string(1, request.version_info);
  if (request.node !== undefined) w.message(2, nodeMessage(request.node));
  for (const name of request.resource_names) w.string(3, name);
  if (request.type_url !== "") w.string(4, request.type_url);
  if (request.response_nonce !== "") w.string(5, request.response_nonce);
  if (request.error_detail !== undefined) {
    const status = new Writer();
    if (request.error_detail.code !== 0) status.int32(1, request.error_detail.code);
    if (request.error_detail.message !== "") status.string(2, request.error_detail.message);
    w.message(6, status.finish());
  }
  return w.finish();
}

/**
 * Reads a message's fields in order: `on(number, wireType, reader)` reads a field it knows and
 * returns true; any other field is skipped. A message field seen twice is merged by keeping the last
 * value of each inner field, which is protobuf's merge for the scalars read here.
 */
function eachField(bytes: Buffer, on: (number: number, wireType: number, r: Reader) => boolean): void {
  const r = new Reader(bytes);
  while (!r.done) {
    const [number, wireType] = r.tag();
    if (!on(number, wireType, r)) r.skip(wireType, number);
  }
}

/** A decoded request; the node keeps only what the server uses (id, cluster). */
export function decodeRequest(bytes: Buffer): DiscoveryRequest {
  let version_info = "";
  let type_url = "";
  let response_nonce = "";
  const resource_names: string[] = [];
  let node: { id: string; cluster: string } | undefined;
  let error_detail: { code: number; message: string } | undefined;
  eachField(bytes, (number, wireType, r) => {
    if (wireType !== LEN) return false;
    if (number === 1) version_info = r.string();
    else if (number === 2) {
      const n = (node ??= { id: "", cluster: "" });
      eachField(r.bytes(), (inner, t, nr) => {
        if (t !== LEN || (inner !== 1 && inner !== 2)) return false;
        if (inner === 1) n.id = nr.string();
        else n.cluster = nr.string();
        return true;
      });
    } else if (number === 3) resource_names.push(r.string());
    else if (number === 4) type_url = r.string();
    else if (number === 5) response_nonce = r.string();
    else if (number === 6) {
      const e = (error_detail ??= { code: 0, message: "" });
      eachField(r.bytes(), (inner, t, er) => {
        if (inner === 1 && t === VARINT) e.code = er.uint32() | 0;
        else if (inner === 2 && t === LEN) e.message = er.string();
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  return {
    version_info,
    ...(node === undefined ? {} : { node }),
    resource_names,
    type_url,
    response_nonce,
    ...(error_detail === undefined ? {} : { error_detail }),
  };
}

// envoy.service.discovery.v3.DiscoveryResponse: version_info = 1, resources = 2 (Any: type_url = 1,
// value = 2), type_url = 4, nonce = 5, control_plane = 6 (identifier = 1).
export function encodeResponse(response: DiscoveryResponse): Buffer {
  const w = new Writer();
  if (response.version_info !== "") w.string(1, response.version_info);
  for (const any of response.resources) {
    const a = new Writer();
    if (any.type_url !== "") a.string(1, any.type_url);
    if (any.value.length > 0)
      a.bytes(2, Buffer.from(any.value.buffer, any.value.byteOffset, any.value.byteLength));
    w.message(2, a.finish());
  }
  if (response.type_url !== "") w.string(4, response.type_url);
  if (response.nonce !== "") w.string(5, response.nonce);
  if (response.control_plane !== undefined) {
    const c = new Writer();
    if (response.control_plane.identifier !== "") c.string(1, response.control_plane.identifier);
    w.message(6, c.finish());
  }
  return w.finish();
}

export function decodeResponse(bytes: Buffer): DiscoveryResponse {
  let version_info = "";
  let type_url = "";
  let nonce = "";
  const resources: WireAny[] = [];
  eachField(bytes, (number, wireType, r) => {
    if (wireType !== LEN) return false;
    if (number === 1) version_info = r.string();
    else if (number === 2) {
      let anyType = "";
      let value: Buffer = Buffer.alloc(0);
      eachField(r.bytes(), (inner, t, ar) => {
        if (t !== LEN || (inner !== 1 && inner !== 2)) return false;
        if (inner === 1) anyType = ar.string();
        else value = ar.bytes();
        return true;
      });
      resources.push({ type_url: anyType, value });
    } else if (number === 4) type_url = r.string();
    else if (number === 5) nonce = r.string();
    else return false;
    return true;
  });
  return { version_info, resources, type_url, nonce };
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
