// What both modes of the demo policy server share: who it is and what it has counted.

export interface ServerIdentity {
  /** The name given on the command line (`--name ps1`), returned in every answer. */
  readonly name: string;
  /** A fresh id per process start, so a client can tell a restarted server from the old one. */
  readonly instance: string;
}

export interface ServerCounters {
  connections: number;
  requests: number;
  /** POST requests received in full (HTTP mode); lets a test check "reached the server once". */
  posts: number;
  handshakeFailures: number;
  /** HTTPS mode: TLS handshakes completed, by the serial number of the certificate presented. */
  tlsHandshakes: Record<string, number>;
}

export function newCounters(): ServerCounters {
  return { connections: 0, requests: 0, posts: 0, handshakeFailures: 0, tlsHandshakes: {} };
}
