// ADS's two messages, written and read field by field, checked against protobufjs' reflection over
// Envoy's descriptor (an encoder and decoder written elsewhere).
import { describe, expect, it } from "vitest";
import { messageType } from "./descriptor.ts";
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from "./wire.ts";
import type { DiscoveryRequest } from "./wire.ts";

type Obj = Record<string, unknown>;
const requestType = messageType("envoy.service.discovery.v3.DiscoveryRequest");
const responseType = messageType("envoy.service.discovery.v3.DiscoveryResponse");
const plain = (m: unknown): unknown => JSON.parse(JSON.stringify(m)) as unknown;

const request: DiscoveryRequest = {
  version_info: "v1",
  node: { id: "ns/pod-0", cluster: "ns/Agent/web", user_agent_name: "tether", user_agent_version: "" },
  resource_names: ["a", "b"],
  type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  response_nonce: "7",
  error_detail: { code: 3, message: "clusters[0].name: é required" },
};

describe("ADS messages on the wire", () => {
  it("a DiscoveryRequest reads back in protobufjs as written, and from protobufjs' bytes", () => {
    const bytes = encodeRequest(request);
    expect(plain(requestType.decode(bytes))).toEqual(plain(request));
    const theirs = Buffer.from(requestType.encode(request as unknown as Obj).finish());
    const { user_agent_name: _n, user_agent_version: _v, ...node } = request.node ?? { id: "", cluster: "" };
    expect(decodeRequest(theirs)).toEqual({ ...request, node });
    expect(decodeRequest(bytes)).toEqual({ ...request, node });
  });

  it("a first request (no version, nonce or error) is the canonical encoding: empty fields left out", () => {
    const first = { version_info: "", resource_names: [], type_url: "t", response_nonce: "" };
    expect(encodeRequest(first)).toEqual(Buffer.from([0x22, 1, 0x74]));
    expect(decodeRequest(encodeRequest(first))).toEqual(first);
  });

  it("writes a negative status code as protobuf's ten-byte int32", () => {
    const bytes = encodeRequest({ ...request, error_detail: { code: -5, message: "" } });
    expect((plain(requestType.decode(bytes)) as Obj)["error_detail"]).toEqual({ code: -5 });
  });

  it("a DiscoveryResponse: Any bytes kept as sent, unknown fields (canary) skipped, both ways", () => {
    const response = {
      version_info: "3",
      resources: [
        { type_url: "type.googleapis.com/x.Y", value: Buffer.from([1, 2, 3]) },
        { type_url: "type.googleapis.com/x.Y", value: Buffer.alloc(0) },
      ],
      canary: true,
      type_url: "type.googleapis.com/x.Y",
      nonce: "n",
      control_plane: { identifier: "tether-operator" },
    };
    const theirs = Buffer.from(responseType.encode(response).finish());
    const { canary: _c, control_plane: _p, ...expected } = response;
    expect(decodeResponse(theirs)).toEqual(expected);
    const ours = encodeResponse(response);
    const back = responseType.decode(ours) as unknown as {
      resources: { type_url: string; value?: Uint8Array }[];
    } & Obj;
    expect(back.resources.map((r) => [r.type_url, Buffer.from(r.value ?? []).toString("hex")])).toEqual([
      ["type.googleapis.com/x.Y", "010203"],
      ["type.googleapis.com/x.Y", ""],
    ]);
    expect([back["version_info"], back["type_url"], back["nonce"], plain(back["control_plane"])]).toEqual([
      "3",
      "type.googleapis.com/x.Y",
      "n",
      { identifier: "tether-operator" },
    ]);
  });

  it("refuses truncated bytes", () => {
    const bytes = encodeRequest(request);
    expect(() => decodeRequest(bytes.subarray(0, bytes.length - 3))).toThrow(/truncated/);
    expect(() => decodeResponse(Buffer.from([0x0a, 5, 0x61]))).toThrow(/truncated/);
  });
});
