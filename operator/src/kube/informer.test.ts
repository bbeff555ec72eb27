import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeTransport, RequestOptions } from "./client.ts";
import { KubeError } from "./errors.ts";
import { Informer } from "./informer.ts";
import { RESOURCES, type KubeObject } from "./resources.ts";

const logger = pino({ level: "silent" });

const cm = (name: string, rv: string): KubeObject => ({
  metadata: { name, namespace: "ns", resourceVersion: rv },
});

/** A fake API server: lists come from `items`, each watch from the next script in `watches`. */
class FakeTransport implements KubeTransport {
  items: KubeObject[] = [];
  listRv = "10";
  lists = 0;
  watchQueries: RequestOptions["query"][] = [];
  accepts: (string | undefined)[] = [];
  watches: ((signal: AbortSignal) => AsyncIterable<Buffer>)[] = [];

  request<T>(method: string, _path: string, options: RequestOptions = {}): Promise<T> {
    if (method !== "GET") throw new Error("read-only");
    this.lists++;
    this.accepts.push(options.accept);
    // An empty PartialObjectMetadataList carries items: null.
    const items = this.items.length === 0 ? null : this.items;
    return Promise.resolve({ metadata: { resourceVersion: this.listRv }, items } as T);
  }

  stream(_path: string, options: RequestOptions): Promise<AsyncIterable<Buffer>> {
    this.watchQueries.push(options.query);
    this.accepts.push(options.accept);
    const next = this.watches.shift() ?? hang;
    return Promise.resolve(next(options.signal!));
  }
}

function lines(...events: unknown[]): (signal: AbortSignal) => AsyncIterable<Buffer> {
  return async function* (signal) {
    for (const e of events) yield Buffer.from(`${JSON.stringify(e)}\n`);
    await waitAbort(signal);
  };
}

async function* hang(signal: AbortSignal): AsyncIterable<Buffer> {
  await waitAbort(signal);
  yield* [];
}

function waitAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = (): void => {
      reject(new Error("aborted"));
    };
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("Informer", () => {
  it("lists, then applies watch events from the list's resourceVersion", async () => {
    const t = new FakeTransport();
    t.items = [cm("a", "5")];
    t.watches = [
      lines(
        { type: "ADDED", object: cm("b", "11") },
        { type: "MODIFIED", object: cm("a", "12") },
        { type: "DELETED", object: cm("b", "13") },
        { type: "BOOKMARK", object: { metadata: { resourceVersion: "14" } } },
      ),
    ];
    const inf = new Informer({ resource: RESOURCES.configMaps, client: t, logger });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type} ${o.metadata.name}`));
    inf.start();
    await inf.synced;
    await until(() => events.length === 4);
    expect(events).toEqual(["ADDED a", "ADDED b", "MODIFIED a", "DELETED b"]);
    expect(t.watchQueries[0]).toMatchObject({
      watch: true,
      resourceVersion: "10",
      allowWatchBookmarks: true,
    });
    expect(inf.list().map((o) => o.metadata.name)).toEqual(["a"]);
    await inf.stop();
  });

  it("asks for metadata only when told, and takes an empty list's null items", async () => {
    const t = new FakeTransport();
    t.watches = [lines({ type: "ADDED", object: cm("x", "11") })];
    const inf = new Informer({ resource: RESOURCES.configMaps, client: t, logger, metadataOnly: true });
    inf.start();
    await inf.synced;
    await until(() => inf.get("ns", "x") !== undefined);
    expect(t.accepts[0]).toContain("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1");
    expect(t.accepts[1]).toContain("as=PartialObjectMetadata;g=meta.k8s.io;v=v1");
    await inf.stop();
  });

  it("restarts a watch that delivers nothing for the stall timeout (watchdog)", async () => {
    const t = new FakeTransport();
    const reasons: string[] = [];
    const inf = new Informer({
      resource: RESOURCES.configMaps,
      client: t,
      logger,
      stallTimeoutMs: 100,
      backoffInitialMs: 1,
      backoffMaxMs: 1,
      onRestart: (r) => reasons.push(r),
    });
    inf.start();
    await until(() => reasons.length >= 1 && t.lists >= 2);
    expect(reasons[0]).toBe("stall");
    await inf.stop();
  });

  it("relists at once when the resourceVersion is gone (410), emitting only the differences", async () => {
    const t = new FakeTransport();
    t.items = [cm("a", "5"), cm("b", "5")];
    t.watches = [lines({ type: "ERROR", object: { metadata: {}, code: 410, message: "too old" } })];
    const reasons: string[] = [];
    const inf = new Informer({
      resource: RESOURCES.configMaps,
      client: t,
      logger,
      onRestart: (r) => reasons.push(r),
    });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type} ${o.metadata.name}`));
    inf.start();
    await inf.synced;
    t.items = [cm("a", "5"), cm("c", "20")];
    t.listRv = "20";
    await until(() => t.lists === 2 && events.length === 4);
    expect(reasons).toEqual(["gone"]);
    expect(events).toEqual(["ADDED a", "ADDED b", "DELETED b", "ADDED c"]);
    await inf.stop();
  });

  it("backs off and relists after an error", async () => {
    const t = new FakeTransport();
    t.watches = [
      () => {
        throw new KubeError("TETHER_ERR_KUBE_TRANSPORT", "connection refused");
      },
    ];
    const reasons: string[] = [];
    const inf = new Informer({
      resource: RESOURCES.configMaps,
      client: t,
      logger,
      backoffInitialMs: 1,
      backoffMaxMs: 1,
      onRestart: (r) => reasons.push(r),
    });
    inf.start();
    await until(() => t.lists === 2);
    expect(reasons).toEqual(["error"]);
    await inf.stop();
  });

  it("does not announce an object it already holds at the same resourceVersion", async () => {
    const t = new FakeTransport();
    t.items = [cm("a", "30")];
    t.watches = [
      lines({ type: "MODIFIED", object: cm("a", "30") }, { type: "ADDED", object: cm("z", "31") }),
    ];
    const inf = new Informer({ resource: RESOURCES.configMaps, client: t, logger });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type} ${o.metadata.name}`));
    inf.start();
    await until(() => events.length === 2);
    expect(events).toEqual(["ADDED a", "ADDED z"]);
    await inf.stop();
  });

  it("remembers an object the operator wrote, silently, until the watch catches up", async () => {
    const t = new FakeTransport();
    t.items = [cm("a", "30")];
    const inf = new Informer({ resource: RESOURCES.configMaps, client: t, logger, labelSelector: "x=y" });
    const events: string[] = [];
    inf.on((type, o) => events.push(`${type} ${o.metadata.name}`));
    inf.start();
    await inf.synced;
    inf.remember({ metadata: { ...cm("a", "40").metadata, labels: { x: "y" } } });
    inf.remember(cm("unlabelled", "41"));
    expect(inf.get("ns", "a")?.metadata.resourceVersion).toBe("40");
    expect(inf.get("ns", "unlabelled")).toBeUndefined();
    expect(events).toEqual(["ADDED a"]);
    await inf.stop();
  });
});
