// A client for the demo TLS backend (tls-backend.ts), used by the load generator and the one-shot
// `request tls://…` command: one verified TLS connection, the backend's greeting, one echoed line.
// The certificate is checked against the given CA and server name, and the backend must present a
// certificate whose CN is the name it greets with — so a client behind a TLS-passthrough broker
// can tell that its session really ends at that backend.
import tls from "node:tls";
import { describeError } from "./traffic.ts";

export interface TlsTarget {
  readonly host: string;
  readonly port: number;
  /** PEM of the CA the backend's certificate chains to. */
  readonly ca: string;
  /** The name sent as SNI and verified against the certificate. */
  readonly servername: string;
}

export interface TlsExchangeResult {
  /** The name the backend greeted with ("" when it never did). */
  readonly server: string;
  /** CN of the certificate the client saw. */
  readonly subject: string;
  /** SHA-256 fingerprint of that certificate, as Node prints it (AA:BB:…). */
  readonly fingerprint256: string;
  /** Null when the handshake verified, the greeting named the certificate's CN, and the echo came back. */
  readonly error: string | null;
}

export const TLS_PING = "ping";

/** Opens one TLS connection, reads the greeting, sends one line, reads its echo, closes. Never rejects. */
export async function tlsExchange(target: TlsTarget, timeoutMs: number): Promise<TlsExchangeResult> {
  return new Promise((resolve) => {
    let server = "";
    let subject = "";
    let fingerprint256 = "";
    let buffered = "";
    let lines = 0;
    let settled = false;
    const settle = (error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ server, subject, fingerprint256, error });
    };
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      ca: target.ca,
      servername: target.servername,
      rejectUnauthorized: true,
    });
    const timer = setTimeout(() => {
      settle(`timeout: no complete exchange within ${timeoutMs} ms`);
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      const cn = cert.subject.CN;
      subject = Array.isArray(cn) ? cn.join(",") : (cn ?? "");
      fingerprint256 = cert.fingerprint256;
    });
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf("\n");
      while (newline >= 0 && !settled) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines++;
        onLine(line);
        newline = buffered.indexOf("\n");
      }
    });
    const onLine = (line: string): void => {
      let message: { server?: unknown; echo?: unknown };
      try {
        message = JSON.parse(line) as { server?: unknown; echo?: unknown };
      } catch {
        settle(`bad line from the backend: ${line.slice(0, 100)}`);
        return;
      }
      if (lines === 1) {
        server = typeof message.server === "string" ? message.server : "";
        if (server === "" || server !== subject) {
          settle(`the backend greeted as "${server}" but its certificate names "${subject}"`);
          return;
        }
        socket.write(`${TLS_PING}\n`);
        return;
      }
      settle(message.echo === TLS_PING ? null : `unexpected echo: ${line.slice(0, 100)}`);
    };
    socket.on("error", (error) => {
      settle(describeError(error));
    });
    socket.on("close", () => {
      settle(
        lines === 0 ? "connection closed before the backend's greeting" : "connection closed before the echo",
      );
    });
  });
}
