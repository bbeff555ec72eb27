// HPACK against RFC 7541's own examples (Appendix C), and malformed blocks.
import { describe, expect, it } from "vitest";
import { HpackDecoder, HpackError, encodeHeaders, huffmanDecode } from "./hpack.ts";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

describe("HPACK", () => {
  it("decodes RFC 7541 C.4: requests with Huffman-coded strings, sharing one dynamic table", () => {
    const d = new HpackDecoder();
    expect(d.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    expect(d.decode(hex("8286 84be 5886 a8eb 1064 9cbf"))).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    expect(d.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"))).toEqual([
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
  });

  it("decodes RFC 7541 C.6: responses that evict from a 256-octet table", () => {
    const d = new HpackDecoder(256);
    const date = "Mon, 21 Oct 2013 20:13:21 GMT";
    const location = "https://www.example.com";
    expect(
      d.decode(
        hex(
          "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ),
      ),
    ).toEqual([
      [":status", "302"],
      ["cache-control", "private"],
      ["date", date],
      ["location", location],
    ]);
    expect(d.decode(hex("4883 640e ffc1 c0bf"))).toEqual([
      [":status", "307"],
      ["cache-control", "private"],
      ["date", date],
      ["location", location],
    ]);
    expect(
      d.decode(
        hex(
          "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ),
      ),
    ).toEqual([
      [":status", "200"],
      ["cache-control", "private"],
      ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
      ["location", location],
      ["content-encoding", "gzip"],
      ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
    ]);
  });

  it("round-trips what it encodes (literals, long values, never-indexed credentials)", () => {
    const headers: [string, string][] = [
      [":method", "POST"],
      ["authorization", "Bearer " + "x".repeat(300)],
      ["grpc-message", "é%20ok"],
    ];
    const block = encodeHeaders(headers, (name) => name === "authorization");
    expect(block[0]).toBe(0x00);
    expect(block.indexOf(Buffer.from("authorization")) - 2).toBeGreaterThan(0);
    expect(block[block.indexOf(Buffer.from("authorization")) - 2]).toBe(0x10);
    expect(new HpackDecoder().decode(block)).toEqual(headers);
  });

  it("refuses malformed blocks with an HpackError", () => {
    const bad = (block: string, limit?: number): void => {
      expect(() => new HpackDecoder(limit).decode(hex(block))).toThrow(HpackError);
    };
    bad("80"); // index 0
    bad("be"); // index 62: the dynamic table is empty
    bad("0f"); // an integer cut short
    bad("ff ff ff ff ff 7f"); // an integer past 2^28
    bad("00 05 61"); // a literal name cut short
    bad("3f e2 1f", 4096); // a table size update to 4097, over the limit
    bad("82 20"); // a table size update after a header
    bad("00 81 ff 00"); // a Huffman string of 8 padding bits (EOS prefix longer than 7)
    bad("00 81 00 00"); // padding that is not all ones
    expect(() => huffmanDecode(hex("ff ff ff ff"))).toThrow(/EOS/);
    // A header list past the limit.
    const big = encodeHeaders([["x", "y".repeat(70_000)]]);
    expect(() => new HpackDecoder().decode(big)).toThrow(/header list over 65536/);
  });
});
