/**
 * How long a change takes to show, measured from inside the client pod: a small Node script,
 * `kubectl exec -i`ed into the pod (the demo image's node, no image change), reads one JSON line per
 * change (`{"url":…,"timeoutMs":…}`) on stdin and polls that URL every `intervalMs` — each poll on a
 * new connection, as a new client would arrive — until it gets a 200 whose JSON body names a `server`
 * (a demo server answered through the new rule). It prints `{"event":"answered","url","ms","polls",
 * "server"}` with `ms` counted from the line's arrival in the pod to that answer, or `{"event":
 * "timeout",…,"last"}` with the last answer seen. The line's way in through `kubectl exec` (a few ms)
 * is not part of `ms`; `roundTripMs` (this process: line written → result read) bounds it from above.
 */
import type { ChildHandle } from "../demo/processes.ts";
import { jsonLines, type ClientPod } from "./client.ts";
import { ClusterError } from "./cluster.ts";

/** The poller, plain CommonJS for `node -e` (argv[1]: the poll interval in ms). */
export const FIRST_ANSWER_SCRIPT = String.raw`
const http = require("node:http");
const readline = require("node:readline");
const intervalMs = Number(process.argv[1]) || 50;
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const once = (url, timeoutMs) =>
  new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { body += chunk; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (error) => resolve({ status: 0, body: error.message }));
    });
    req.on("timeout", () => req.destroy(new Error("no answer within " + timeoutMs + " ms")));
    req.on("error", (error) => resolve({ status: 0, body: error.message }));
  });
const serverOf = (answer) => {
  if (answer.status !== 200) return undefined;
  try {
    const server = JSON.parse(answer.body).server;
    return typeof server === "string" && server !== "" ? server : undefined;
  } catch {
    return undefined;
  }
};
const watch = async (job, receivedAt) => {
  let polls = 0;
  let last = "";
  for (;;) {
    const sentAt = performance.now();
    polls++;
    const answer = await once(job.url, 2000);
    const server = serverOf(answer);
    const ms = performance.now() - receivedAt;
    if (server !== undefined) return { event: "answered", url: job.url, ms, polls, server };
    last = answer.status + " " + answer.body.slice(0, 200);
    if (ms > job.timeoutMs) return { event: "timeout", url: job.url, ms, polls, last };
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, sentAt + intervalMs - performance.now())));
  }
};
let queue = Promise.resolve();
readline
  .createInterface({ input: process.stdin, crlfDelay: Infinity })
  .on("line", (line) => {
    const receivedAt = performance.now();
    queue = queue.then(async () => {
      let job = {};
      try {
        job = JSON.parse(line);
        print(await watch(job, receivedAt));
      } catch (error) {
        print({ event: "error", url: job.url, error: String(error) });
      }
    });
  })
  .on("close", () => {
    void queue.then(() => process.exit(0));
  });
print({ event: "ready", intervalMs });
`;

export interface FirstAnswer {
  readonly url: string;
  /** In the pod: from the request line's arrival to the first answer through the new rule. */
  readonly ms: number;
  /** Polls sent, the answering one included. */
  readonly polls: number;
  /** The demo server that answered. */
  readonly server: string;
  /** In this process: from writing the line to reading the answer (bounds `ms` from above). */
  readonly roundTripMs: number;
}

export class FirstAnswerTimeout extends ClusterError {
  readonly url: string;
  /** How long the pod polled. */
  readonly ms: number;
  constructor(url: string, ms: number, last: string) {
    super(`${url}: no answer through the new rule within ${Math.round(ms)} ms (last: ${last})`);
    this.name = "FirstAnswerTimeout";
    this.url = url;
    this.ms = ms;
  }
}

/** The poller running in a client pod; `firstAnswer` one change at a time, then `stop`. */
export class FirstAnswerWatch {
  private readonly child: ChildHandle;

  private constructor(child: ChildHandle) {
    this.child = child;
  }

  /** Starts the poller in `client`'s pod; resolves once it is reading its stdin. */
  static async start(client: ClientPod, intervalMs = 50): Promise<FirstAnswerWatch> {
    const node = client.exec[0] ?? "node";
    const child = client.cluster.spawn(
      `first-answer watch in ${client.namespace}/${client.name}`,
      [
        "exec",
        "-i",
        "-n",
        client.namespace,
        client.name,
        "--",
        node,
        "-e",
        FIRST_ANSWER_SCRIPT,
        String(intervalMs),
      ],
      "pipe",
    );
    try {
      await child.waitForLine(
        (line) => (jsonLines(line)[0]?.["event"] === "ready" ? true : undefined),
        60_000,
      );
    } catch (error) {
      await child.kill();
      throw error;
    }
    return new FirstAnswerWatch(child);
  }

  /**
   * Polls `url` from the pod until a demo server answers it (call right after the change returned);
   * throws FirstAnswerTimeout when none did within `timeoutMs`.
   */
  async firstAnswer(url: string, timeoutMs = 30_000): Promise<FirstAnswer> {
    const written = performance.now();
    const result = this.child.waitForLine((line) => {
      const parsed = jsonLines(line)[0];
      return parsed !== undefined && parsed["url"] === url && parsed["event"] !== "ready"
        ? parsed
        : undefined;
    }, timeoutMs + 30_000);
    this.child.write(`${JSON.stringify({ url, timeoutMs })}\n`);
    const line = await result;
    const roundTripMs = performance.now() - written;
    const ms = Number(line["ms"]);
    if (line["event"] !== "answered") {
      const last = line["last"] ?? line["error"];
      throw new FirstAnswerTimeout(url, ms, typeof last === "string" ? last : JSON.stringify(line));
    }
    return { url, ms, polls: Number(line["polls"]), server: String(line["server"]), roundTripMs };
  }

  /** Ends the poller's stdin and waits (briefly) for it to exit; kills the kubectl exec after that. */
  async stop(): Promise<void> {
    this.child.endInput();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.child.exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
    clearTimeout(timer);
    await this.child.kill();
  }
}
