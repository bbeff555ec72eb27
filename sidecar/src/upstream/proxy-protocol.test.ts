import { describe, expect, it } from "vitest";
import { parseProxyHeaderV2, proxyHeaderV1, proxyHeaderV2 } from "./proxy-protocol.ts";

const addrs = {
  sourceAddress: "10.1.2.3",
  sourcePort: 51000,
  destinationAddress: "10.9.8.7",
  destinationPort: 443,
};

describe("PROXY protocol", () => {
  it("writes a v2 header for IPv4 that parses back", () => {
    const h = proxyHeaderV2(addrs);
    expect(h.length).toBe(28);
    expect(h.subarray(12, 16)).toEqual(Buffer.from([0x21, 0x11, 0x00, 0x0c]));
    expect(parseProxyHeaderV2(Buffer.concat([h, Buffer.from("hello")]))).toEqual({
      length: 28,
      command: "PROXY",
      addresses: addrs,
    });
  });

  it("maps ::ffff: addresses to IPv4 and writes IPv6 otherwise", () => {
    const mapped = proxyHeaderV2({ ...addrs, sourceAddress: "::ffff:10.1.2.3" });
    expect(parseProxyHeaderV2(mapped)?.addresses?.sourceAddress).toBe("10.1.2.3");
    const v6 = proxyHeaderV2({ ...addrs, sourceAddress: "2001:db8::1", destinationAddress: "::1" });
    expect(v6.length).toBe(16 + 36);
    expect(v6.readUInt8(13)).toBe(0x21);
    expect(v6.subarray(16, 18)).toEqual(Buffer.from([0x20, 0x01]));
    expect(v6.readUInt8(16 + 15)).toBe(1);
    expect(v6.readUInt8(16 + 16 + 15)).toBe(1);
  });

  it("uses LOCAL (v2) and UNKNOWN (v1) without a client, and the v1 text form", () => {
    expect(parseProxyHeaderV2(proxyHeaderV2(undefined))).toEqual({ length: 16, command: "LOCAL" });
    expect(proxyHeaderV1(undefined).toString()).toBe("PROXY UNKNOWN\r\n");
    expect(proxyHeaderV1(addrs).toString()).toBe("PROXY TCP4 10.1.2.3 10.9.8.7 51000 443\r\n");
  });
});
