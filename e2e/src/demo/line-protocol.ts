// The demo policy servers' TCP protocol: newline-terminated text lines with a two-way handshake,
// modelled on the legacy agent ↔ policy-server link. A client that keeps a connection
// across a server restart (or is spliced onto a new upstream connection by a careless proxy)
// never saw the new server's HELLO, so its requests fail with "failed to receive client hello" —
// the error the legacy agent hit — instead of silently working.
//
//   server → client   HELLO tether-demo/1 server=<name> instance=<instance id>
//   client → server   HELLO client=<name> instance=<instance id it was greeted with>
//   server → client   READY                       (or ERR <code> <message>, then close)
//   client → server   AUTHZ <id> <resource> [<action>]   → OK {"id":…,"allow":…,"server":…,…}
//   client → server   PING <id>                          → OK {"id":…,"pong":true,…}
//   client → server   QUIT                               → BYE, then close
//   anything else                                        → ERR TETHER_ERR_DEMO_BAD_REQUEST …
import net from "node:net";

export const PROTOCOL_VERSION = "tether-demo/1";
/** Longest line either side accepts; a longer one is a protocol error. */
export const MAX_LINE_BYTES = 8192;

export const ERR_NO_CLIENT_HELLO = "TETHER_ERR_DEMO_NO_CLIENT_HELLO";
export const ERR_BAD_HANDSHAKE = "TETHER_ERR_DEMO_BAD_HANDSHAKE";
export const ERR_HANDSHAKE_TIMEOUT = "TETHER_ERR_DEMO_HANDSHAKE_TIMEOUT";
export const ERR_BAD_REQUEST = "TETHER_ERR_DEMO_BAD_REQUEST";
export const ERR_LINE_TOO_LONG = "TETHER_ERR_DEMO_LINE_TOO_LONG";
export const ERR_CONNECTION_CLOSED = "TETHER_ERR_DEMO_CONNECTION_CLOSED";
export const ERR_TIMEOUT = "TETHER_ERR_DEMO_TIMEOUT";

/** Splits a byte stream into lines; calls `onLine` for each complete one (without "\n" / "\r\n"). */
export class LineSplitter {
  private buffered = "";
  private readonly onLine: (line: string) => void;
  private readonly onOverflow: () => void;

  constructor(onLine: (line: string) => void, onOverflow: () => void) {
    this.onLine = onLine;
    this.onOverflow = onOverflow;
  }

  push(chunk: string): void {
    this.buffered += chunk;
    let newline = this.buffered.indexOf("\n");
    while (newline !== -1) {
      const line = this.buffered.slice(0, newline).replace(/\r$/, "");
      this.buffered = this.buffered.slice(newline + 1);
      this.onLine(line);
      newline = this.buffered.indexOf("\n");
    }
    if (this.buffered.length > MAX_LINE_BYTES) {
      this.buffered = "";
      this.onOverflow();
    }
  }
}

/** Parses `key=value` words (as in the HELLO lines) into a map. */
export function parseFields(words: readonly string[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq > 0) fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return fields;
}

export class LineProtocolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "LineProtocolError";
  }
}

export interface ServerGreeting {
  readonly server: string;
  readonly instance: string;
}

export interface LineClientOptions {
  readonly host: string;
  readonly port: number;
  readonly clientName?: string;
  /** Deadline for connect + handshake and for each request. Default 5000 ms. */
  readonly timeoutMs?: number;
  /**
   * Answer the greeting with this instance id instead of the one received: simulates an agent
   * that kept the connection details of a server that has since restarted.
   */
  readonly staleInstance?: string;
}

interface Waiter {
  resolve(line: string): void;
  reject(error: Error): void;
}

/**
 * A minimal client of the line protocol: connects, performs the handshake, then sends one
 * request at a time. Every wait has a deadline; a closed socket rejects whatever is pending.
 */
export class LineClient {
  greeting: ServerGreeting | null = null;
  private readonly socket: net.Socket;
  private readonly lines: string[] = [];
  private waiter: Waiter | null = null;
  private closedError: Error | null = null;
  private readonly timeoutMs: number;
  private nextId = 1;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    const splitter = new LineSplitter(
      (line) => {
        this.deliver(line);
      },
      () => {
        this.fail(new LineProtocolError(ERR_LINE_TOO_LONG, "server sent an over-long line"));
      },
    );
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      splitter.push(chunk);
    });
    socket.on("error", (error) => {
      this.fail(error);
    });
    socket.on("close", () => {
      this.fail(new LineProtocolError(ERR_CONNECTION_CLOSED, "connection closed by peer"));
    });
  }

  /** Connects and completes the handshake; rejects with the server's ERR line if it refuses. */
  static async connect(options: LineClientOptions): Promise<LineClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const socket = net.connect({ host: options.host, port: options.port });
    const client = new LineClient(socket, timeoutMs);
    try {
      const hello = await client.nextLine();
      const words = hello.split(" ");
      if (words[0] !== "HELLO" || words[1] !== PROTOCOL_VERSION) {
        throw new LineProtocolError(ERR_BAD_HANDSHAKE, `unexpected greeting ${JSON.stringify(hello)}`);
      }
      const fields = parseFields(words.slice(2));
      const greeting = { server: fields.get("server") ?? "", instance: fields.get("instance") ?? "" };
      const instance = options.staleInstance ?? greeting.instance;
      socket.write(`HELLO client=${options.clientName ?? "demo-client"} instance=${instance}\n`);
      const ready = await client.nextLine();
      if (ready !== "READY") throw errorFromLine(ready);
      client.greeting = greeting;
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** Asks for a decision; resolves with the server's JSON answer. */
  async authorize(resource: string, action = "GET"): Promise<Record<string, unknown>> {
    return this.request(`AUTHZ ${this.nextId++} ${resource} ${action}`);
  }

  async ping(): Promise<Record<string, unknown>> {
    return this.request(`PING ${this.nextId++}`);
  }

  /** Sends a raw line and returns the raw answer (for tests of the protocol itself). */
  async sendRaw(line: string): Promise<string> {
    this.socket.write(line + "\n");
    return this.nextLine();
  }

  close(): void {
    this.socket.destroy();
  }

  /** Resolves once the socket is closed (by either side), or after `timeoutMs`. */
  async waitClosed(timeoutMs = this.timeoutMs): Promise<boolean> {
    if (this.socket.closed) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve(false);
      }, timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async request(line: string): Promise<Record<string, unknown>> {
    const answer = await this.sendRaw(line);
    if (!answer.startsWith("OK ")) throw errorFromLine(answer);
    return JSON.parse(answer.slice(3)) as Record<string, unknown>;
  }

  private async nextLine(): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return queued;
    if (this.closedError) throw this.closedError;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new LineProtocolError(ERR_TIMEOUT, `no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  private deliver(line: string): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = null;
      waiter.resolve(line);
    } else {
      this.lines.push(line);
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(this.closedError);
  }
}

/** Turns an `ERR <code> <message>` line (or anything unexpected) into an error. */
export function errorFromLine(line: string): LineProtocolError {
  const match = /^ERR (\S+) ?(.*)$/.exec(line);
  if (match) return new LineProtocolError(match[1] ?? ERR_BAD_REQUEST, match[2] ?? "");
  return new LineProtocolError(ERR_BAD_REQUEST, `unexpected answer ${JSON.stringify(line)}`);
}
