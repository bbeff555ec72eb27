// PROXY protocol headers (v1 text, v2 binary) sent first on an upstream connection so the backend
// learns the original client address (Broker). LOCAL / UNKNOWN when there is no client
// (health checks, shared HTTP pools).
import net from "node:net";

export interface ProxiedAddresses {
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** "::ffff:10.0.0.1" → "10.0.0.1", so v4 clients behind a dual-stack listener stay v4. */
function unmap(address: string): string {
  return address.startsWith("::ffff:") && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail = ""] = address.split("::");
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const h = parse(head);
  const t = parse(tail);
  const groups = address.includes("::")
    ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t]
    : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function proxyHeaderV2(addresses: ProxiedAddresses | undefined): Buffer {
  if (addresses === undefined) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const src = unmap(addresses.sourceAddress);
  const dst = unmap(addresses.destinationAddress);
  if (net.isIPv4(src) && net.isIPv4(dst)) {
    const body = Buffer.alloc(12);
    src.split(".").forEach((o, i) => body.writeUInt8(Number(o), i));
    dst.split(".").forEach((o, i) => body.writeUInt8(Number(o), 4 + i));
    body.writeUInt16BE(addresses.sourcePort, 8);
    body.writeUInt16BE(addresses.destinationPort, 10);
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 12]), body]);
  }
  const toV6 = (a: string): string => (net.isIPv4(a) ? `::ffff:${a}` : a);
  const body = Buffer.alloc(36);
  ipv6Bytes(toV6(src).replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, (_m, v4: string) => v4ToMappedHex(v4))).copy(
    body,
    0,
  );
  ipv6Bytes(toV6(dst).replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, (_m, v4: string) => v4ToMappedHex(v4))).copy(
    body,
    16,
  );
  body.writeUInt16BE(addresses.sourcePort, 32);
  body.writeUInt16BE(addresses.destinationPort, 34);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x21, 0x00, 36]), body]);
}

function v4ToMappedHex(v4: string): string {
  const o = v4.split(".").map(Number);
  const hi = (((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16);
  const lo = (((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16);
  return `::ffff:${hi}:${lo}`;
}

export function proxyHeaderV1(addresses: ProxiedAddresses | undefined): Buffer {
  if (addresses === undefined) return Buffer.from("PROXY UNKNOWN\r\n");
  const src = unmap(addresses.sourceAddress);
  const dst = unmap(addresses.destinationAddress);
  const family = net.isIPv4(src) && net.isIPv4(dst) ? "TCP4" : "TCP6";
  return Buffer.from(
    `PROXY ${family} ${src} ${dst} ${addresses.sourcePort} ${addresses.destinationPort}\r\n`,
  );
}

/** Parses a v2 header at the start of `data` (for tests and diagnostics). */
export function parseProxyHeaderV2(
  data: Buffer,
): { length: number; command: "LOCAL" | "PROXY"; addresses?: ProxiedAddresses } | undefined {
  if (data.length < 16 || !data.subarray(0, 12).equals(V2_SIGNATURE)) return undefined;
  const verCmd = data.readUInt8(12);
  const fam = data.readUInt8(13);
  const len = data.readUInt16BE(14);
  if (data.length < 16 + len) return undefined;
  const command = (verCmd & 0x0f) === 0 ? "LOCAL" : "PROXY";
  if (command === "LOCAL" || fam !== 0x11) return { length: 16 + len, command };
  const b = data.subarray(16, 16 + len);
  return {
    length: 16 + len,
    command,
    addresses: {
      sourceAddress: [...b.subarray(0, 4)].join("."),
      destinationAddress: [...b.subarray(4, 8)].join("."),
      sourcePort: b.readUInt16BE(8),
      destinationPort: b.readUInt16BE(10),
    },
  };
}
