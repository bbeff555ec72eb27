// @tether/xds's AdsServer in a child process, so a test can SIGKILL it: the kernel closes its
// sockets (no GOAWAY, no gRPC status), as when a control-plane replica crashes.
//   node ads-server.ts --snapshot '<json>'
// The JSON is { group, version, cluster: [...], endpoint: [...], listener: [...] } (resources in ADS's
// JSON form, named by their name / cluster_name). Prints {"listening": port} once it listens.
import { parseArgs } from "node:util";
import { AdsServer, type ResourceJson, type Snapshot } from "@tether/xds";

interface SnapshotArg {
  group: string;
  version: string;
  cluster: ResourceJson[];
  endpoint: ResourceJson[];
  listener: ResourceJson[];
}

const { values } = parseArgs({
  options: { snapshot: { type: "string" }, port: { type: "string", default: "0" } },
});
const arg = JSON.parse(values.snapshot ?? "") as SnapshotArg;
const byName = (items: ResourceJson[], key: string): Map<string, ResourceJson> =>
  new Map(items.map((r) => [String(r[key]), r]));
const snapshot: Snapshot = {
  version: arg.version,
  resources: {
    cluster: byName(arg.cluster, "name"),
    endpoint: byName(arg.endpoint, "cluster_name"),
    listener: byName(arg.listener, "name"),
    route: new Map(),
  },
};
const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
const server = new AdsServer({ host: "127.0.0.1", port: Number(values.port), log: quiet });
server.setSnapshot(arg.group, snapshot);
const { port } = await server.start();
process.stdout.write(`${JSON.stringify({ listening: port })}\n`);
// Streams and ACKs for the test: one line per change, read from stdout.
setInterval(() => {
  process.stdout.write(`${JSON.stringify({ streams: server.streams().map((s) => s.acked) })}\n`);
}, 100).unref();
process.on("SIGTERM", () => {
  void server.stop().then(() => process.exit(0));
});
