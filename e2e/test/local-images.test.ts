/**
 * The local cluster's images (e2e/local/images.sh), for real: the OCI archives are checked blob by
 * blob, imported into a throwaway containerd 2 (its own root, state and socket under a temp dir, the
 * overlayfs snapshotter, no CRI) in namespace k8s.io, and every image is run with `ctr run` on a
 * read-only root, as the chart runs them. containerd, its shim and ctr come from e2e/k8s/build.sh,
 * runc from Debian. Skipped (with the reason in the suite's name) unless root with those binaries and
 * built dist/ directories (`npm test` builds first; the script's own tsc step is skipped here).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";
import { ChildHandle } from "../src/demo/processes.ts";

const SCRIPT = join(REPO_ROOT, "e2e/local/images.sh");
const versions = Object.fromEntries(
  [...readFileSync(join(REPO_ROOT, "e2e/k8s/versions.env"), "utf8").matchAll(/^([A-Z_]+)=(\S+)$/gm)].map(
    (m) => [m[1] ?? "", m[2] ?? ""],
  ),
);
const TAG = /^appVersion: "(.+)"$/m.exec(
  readFileSync(join(REPO_ROOT, "charts/tether/Chart.yaml"), "utf8"),
)?.[1];
const COREDNS_VERSION = versions["COREDNS_VERSION"] ?? "";
const BIN_DIR = join(
  process.env["TETHER_CACHE"] ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "tether"),
  "k8s",
  `${versions["KUBERNETES_VERSION"] ?? ""}-etcd-${versions["ETCD_VERSION"] ?? ""}`,
  "bin",
);
const REFS = {
  operator: `localhost/tether/operator:${TAG ?? ""}`,
  sidecar: `localhost/tether/sidecar:${TAG ?? ""}`,
  demo: `localhost/tether/demo:${TAG ?? ""}`,
  pause: `localhost/tether/pause:${/^pause_version=(\S+)$/m.exec(readFileSync(SCRIPT, "utf8"))?.[1] ?? ""}`,
  coredns: `localhost/tether/coredns:${COREDNS_VERSION}`,
} as const;
const NODE_IMAGES = ["operator", "sidecar", "demo"] as const;
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function onPath(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (containerd, runc and overlay mounts)";
  // Root in an unprivileged container (the CI workflow's test job) may not mount: try a tmpfs in a
  // private mount namespace of its own, gone when the probe exits.
  const probe = spawnSync("unshare", ["--mount", "--", "mount", "-t", "tmpfs", "tether-probe", tmpdir()], {
    stdio: "ignore",
  });
  if (probe.status !== 0) return "needs to mount (CAP_SYS_ADMIN; unshare --mount failed)";
  for (const bin of ["containerd", "containerd-shim-runc-v2", "ctr", "coredns"]) {
    if (!existsSync(join(BIN_DIR, bin)))
      return `${join(BIN_DIR, bin)} is missing (bash e2e/k8s/build.sh containerd containerd-shim-runc-v2 ctr coredns)`;
  }
  for (const tool of ["runc", "gcc", "jq", "tar", "gzip"]) {
    if (!onPath(tool)) return `${tool} is not on PATH (apt-get install -y ${tool})`;
  }
  for (const file of [
    "operator/dist/main.js",
    "sidecar/dist/bundle/sidecar.blob",
    "e2e/dist/image/main.js",
  ]) {
    if (!existsSync(join(REPO_ROOT, file))) return `${file} is missing (npm run build)`;
  }
  return undefined;
}
const SKIP = skipReason();

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (killed at the deadline), collecting its output. */
function run(
  command: string,
  args: readonly string[],
  timeoutMs = 60_000,
  env = process.env,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}
interface ImageConfig {
  architecture: string;
  os: string;
  config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
  };
  rootfs: { type: string; diff_ids: string[] };
}
/** One image archive, unpacked and checked: every blob against its digest and size. */
interface Layout {
  readonly index: { schemaVersion: number; mediaType: string; manifests: Descriptor[] };
  readonly manifest: { mediaType: string; config: Descriptor; layers: Descriptor[] };
  readonly config: ImageConfig;
  /** The layer blobs (gzipped tars) and the sha256 of each one's content, uncompressed. */
  readonly layerFiles: string[];
  readonly diffIds: string[];
}

const CTR_PREFIX = "tether-images-test";
let tmp = "";
let archives = new Map<string, string>();
let buildSeconds = 0;
let containerd: ChildHandle | undefined;
const longRunning: ChildHandle[] = [];
const layouts = new Map<string, Layout>();
const cgroupParent = `${CTR_PREFIX}-${process.pid}`;

const sock = (): string => join(tmp, "containerd.sock");
const ctr = (args: readonly string[], timeoutMs = 60_000): Promise<Result> =>
  run(join(BIN_DIR, "ctr"), ["--address", sock(), "--namespace", "k8s.io", ...args], timeoutMs);

const ranIds = new Set<string>();

/** A shim's socket: /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">. */
const shimSocket = (id: string): string =>
  join(
    "/run/containerd/s",
    createHash("sha256")
      .update(join(sock(), "k8s.io", id))
      .digest("hex"),
  );

/** `ctr run --rm` on a read-only root with host networking, in our own runc root and cgroup parent. */
function runArgs(
  id: string,
  ref: string,
  command: readonly string[],
  extra: readonly string[] = [],
): string[] {
  ranIds.add(`${CTR_PREFIX}-${id}`);
  return [
    "run",
    "--rm",
    "--snapshotter",
    "overlayfs",
    "--runc-root",
    join(tmp, "runc"),
    "--cgroup",
    `${cgroupParent}/${id}`,
    "--net-host",
    "--read-only",
    ...extra,
    ref,
    `${CTR_PREFIX}-${id}`,
    ...command,
  ];
}

async function buildImages(out: string, images: readonly string[] = []): Promise<Map<string, string>> {
  const result = await run("bash", [SCRIPT, out, ...images], 600_000, {
    ...process.env,
    TETHER_IMAGES_SKIP_BUILD: "1",
  });
  if (result.code !== 0) throw new Error(`images.sh exited ${String(result.code)}:\n${result.stderr}`);
  return new Map(
    result.stdout
      .trim()
      .split("\n")
      .map((line) => line.split("\t") as [string, string]),
  );
}

/** sha256 of a file, streamed (of its gunzipped content with `gunzip`): layers are 100+ MB unpacked. */
async function sha256File(file: string, gunzip = false): Promise<string> {
  const hash = createHash("sha256");
  const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) hash.update(chunk);
  };
  if (gunzip) await pipeline(createReadStream(file), createGunzip(), consume);
  else await pipeline(createReadStream(file), consume);
  return `sha256:${hash.digest("hex")}`;
}

async function readLayout(archive: string, dir: string): Promise<Layout> {
  await mkdir(dir, { recursive: true });
  const untar = await run("tar", ["-xf", archive, "-C", dir]);
  if (untar.code !== 0) throw new Error(`tar -xf ${archive}: ${untar.stderr}`);
  const blobPath = (d: Descriptor): string => join(dir, "blobs", "sha256", d.digest.replace(/^sha256:/, ""));
  const blob = async (d: Descriptor): Promise<Buffer> => {
    const data = await readFile(blobPath(d));
    expect(sha256(data), `${archive}: blob ${d.digest}`).toBe(d.digest);
    expect(data.length, `${archive}: size of ${d.digest}`).toBe(d.size);
    return data;
  };
  expect(JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"))).toEqual({
    imageLayoutVersion: "1.0.0",
  });
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as Layout["index"];
  const [entry] = index.manifests;
  if (entry === undefined) throw new Error(`${archive}: index.json lists no manifest`);
  const manifest = JSON.parse((await blob(entry)).toString("utf8")) as Layout["manifest"];
  const config = JSON.parse((await blob(manifest.config)).toString("utf8")) as ImageConfig;
  const layerFiles: string[] = [];
  const diffIds: string[] = [];
  for (const layer of manifest.layers) {
    expect(await sha256File(blobPath(layer)), `${archive}: blob ${layer.digest}`).toBe(layer.digest);
    expect(statSync(blobPath(layer)).size, `${archive}: size of ${layer.digest}`).toBe(layer.size);
    layerFiles.push(blobPath(layer));
    diffIds.push(await sha256File(blobPath(layer), true));
  }
  return { index, manifest, config, layerFiles, diffIds };
}

function tarList(gzippedLayer: string): string {
  return spawnSync("tar", ["-tvzf", gzippedLayer], { encoding: "utf8", maxBuffer: 64 << 20 }).stdout;
}

async function startContainerd(): Promise<void> {
  await writeFile(
    join(tmp, "config.toml"),
    [
      "version = 3",
      `root = "${join(tmp, "root")}"`,
      `state = "${join(tmp, "state")}"`,
      // No CRI (nothing here talks to kubelet) and no NRI (its socket is machine-wide).
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",',
      '  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]',
      "[grpc]",
      `  address = "${sock()}"`,
      "[ttrpc]",
      `  address = "${sock()}.ttrpc"`,
      "[debug]",
      '  address = ""',
      "[metrics]",
      '  address = ""',
      "[plugins.'io.containerd.internal.v1.opt']",
      `  path = "${join(tmp, "opt")}"`,
      "",
    ].join("\n"),
  );
  containerd = new ChildHandle({
    name: "containerd",
    command: join(BIN_DIR, "containerd"),
    args: ["--config", join(tmp, "config.toml")],
    env: { ...process.env, PATH: `${BIN_DIR}:${process.env["PATH"] ?? ""}` },
  });
  await containerd.waitForLine(
    (line) => (line.includes("containerd successfully booted") ? true : undefined),
    30_000,
  );
}

/** Polls `ctr tasks ls` (every 100 ms, until the deadline) for the host PID of a running task. */
async function taskPid(id: string, timeoutMs = 20_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const tasks = await ctr(["tasks", "ls"]);
    const row = tasks.stdout.split("\n").find((line) => line.startsWith(`${CTR_PREFIX}-${id} `));
    const [, pid, status] = row?.trim().split(/\s+/) ?? [];
    if (status === "RUNNING" && pid !== undefined) return Number(pid);
    if (performance.now() > deadline)
      throw new Error(`task ${id} not running within ${timeoutMs} ms:\n${tasks.stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function procStatus(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? "").slice(field.length + 1).trim();
}

/** Everything the run made goes, even after a failure: tasks, containerd, shims, mounts, cgroups, files. */
async function cleanUp(): Promise<void> {
  if (containerd?.running === true) {
    const tasks = await ctr(["tasks", "ls", "-q"]);
    for (const id of tasks.stdout.split("\n").filter((t) => t !== "")) {
      await ctr(["tasks", "kill", "-s", "SIGKILL", id]);
      await ctr(["tasks", "delete", "--force", id]);
    }
    const containers = await ctr(["containers", "ls", "-q"]);
    for (const id of containers.stdout.split("\n").filter((c) => c !== ""))
      await ctr(["containers", "rm", id]);
  }
  for (const child of longRunning) await child.kill();
  await containerd?.stop(15_000);
  // Shims of this containerd (started with its socket as -address) that outlived it.
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmdline.includes("containerd-shim") && cmdline.includes(sock()))
        process.kill(Number(pid), "SIGKILL");
    } catch {
      // the process is gone already
    }
  }
  // Shims remove their sockets on exit; this does, should one have been killed.
  for (const id of ranIds) {
    const socket = shimSocket(id);
    if (existsSync(socket)) {
      process.stderr.write(`[local-images] removing the shim socket left by ${id}: ${socket}\n`);
      rmSync(socket, { force: true });
    }
  }
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((mountPoint) => tmp !== "" && mountPoint.startsWith(`${tmp}/`))
    .reverse();
  for (const mountPoint of mounts) spawnSync("umount", ["-l", mountPoint]);
  for (const controller of existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup") : []) {
    const parent = join("/sys/fs/cgroup", controller, cgroupParent);
    if (!existsSync(parent)) continue;
    const leaves = readdirSync(parent, { withFileTypes: true }).filter((d) => d.isDirectory());
    for (const dir of [...leaves.map((d) => join(parent, d.name)), parent]) {
      try {
        rmdirSync(dir);
      } catch (error) {
        process.stderr.write(`[local-images] cannot remove cgroup ${dir}: ${String(error)}\n`);
      }
    }
  }
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true });
}

describe.skipIf(SKIP !== undefined)(
  `local images (e2e/local/images.sh)${SKIP ? ` — skipped: ${SKIP}` : ""}`,
  () => {
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), `${CTR_PREFIX}-`));
      const started = performance.now();
      archives = await buildImages(join(tmp, "out"));
      buildSeconds = (performance.now() - started) / 1000;
      for (const [ref, archive] of archives)
        layouts.set(ref, await readLayout(archive, join(tmp, "layout", ref)));
      await startContainerd();
    }, 600_000);

    afterAll(async () => {
      await cleanUp();
      if (tmp !== "") expect(existsSync(tmp)).toBe(false);
    }, 120_000);

    it("builds one archive per image, named from the chart's appVersion and versions.env, never latest", () => {
      process.stdout.write(
        `[local-images] images.sh built ${String(archives.size)} archives in ${buildSeconds.toFixed(1)} s\n`,
      );
      expect([...archives.keys()].sort()).toEqual(Object.values(REFS).sort());
      for (const ref of archives.keys()) expect(ref).not.toMatch(/:latest$/);
    });

    it("writes valid OCI layouts: digests, sizes, diff_ids, media types and the ref.name annotation", () => {
      for (const [ref, layout] of layouts) {
        expect(layout.index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
        expect(layout.index.manifests).toHaveLength(1);
        expect(layout.index.manifests[0]?.annotations?.["org.opencontainers.image.ref.name"]).toBe(ref);
        expect(layout.manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
        expect(layout.manifest.config.mediaType).toBe("application/vnd.oci.image.config.v1+json");
        for (const layer of layout.manifest.layers)
          expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
        expect(layout.config.os).toBe("linux");
        expect(layout.config.rootfs.diff_ids).toEqual(layout.diffIds);
      }
    });

    it("gives the Node images one shared base layer: node, its libraries and loader, passwd, /tmp 1777", () => {
      const bases = NODE_IMAGES.map((image) => layouts.get(REFS[image])?.manifest.layers[0]?.digest);
      expect(new Set(bases).size).toBe(1);
      const base = layouts.get(REFS.operator)?.layerFiles[0];
      if (base === undefined) throw new Error("no base layer");
      const listing = tarList(base);
      expect(listing).toMatch(/^-rwxr-xr-x 0\/0 .* usr\/local\/bin\/node$/m);
      expect(listing).toMatch(/ lib64\/ld-linux-x86-64\.so\.2$/m);
      expect(listing).toMatch(/ lib\/x86_64-linux-gnu\/libstdc\+\+\.so\.6$/m);
      expect(listing).toMatch(/^drwxrwxrwt 0\/0 .* tmp\/$/m);
      expect(listing).toMatch(/ etc\/passwd$/m);
      for (const line of listing.trim().split("\n")) expect(line).toMatch(/ 0\/0 .* 1970-01-01 00:00 /);
    });

    it("rebuilds the same layers from the same inputs", async () => {
      // The first build's compressed-layer cache (keyed by diff_id) comes along, so only the gzip step
      // is skipped: every layer is tarred and hashed again, and a different tar would miss the cache.
      await mkdir(join(tmp, "out-again"));
      const copied = await run("cp", ["-al", join(tmp, "out", ".cache"), join(tmp, "out-again", ".cache")]);
      expect(copied.code, copied.stderr).toBe(0);
      const again = await buildImages(join(tmp, "out-again"), ["pause", "demo"]);
      const digest = (archive: string | undefined): string => sha256(readFileSync(archive ?? ""));
      expect(digest(again.get(REFS.pause))).toBe(digest(archives.get(REFS.pause)));
      // dist/ may be rebuilt meanwhile by someone else: compare the shared base layer, not the app layer.
      const demoAgain = await readLayout(again.get(REFS.demo) ?? "", join(tmp, "layout-again"));
      expect(demoAgain.config.rootfs.diff_ids[0]).toBe(layouts.get(REFS.demo)?.config.rootfs.diff_ids[0]);
    }, 300_000);

    it("imports every archive into containerd's k8s.io namespace under its fully qualified name", async () => {
      for (const archive of archives.values()) {
        const imported = await ctr(["images", "import", "--snapshotter", "overlayfs", archive], 180_000);
        expect(imported.code, imported.stderr).toBe(0);
      }
      const listed = await ctr(["images", "ls", "-q"]);
      expect(listed.stdout.trim().split("\n").sort()).toEqual(Object.values(REFS).sort());
      // containerd unpacked the shared base once: one snapshot, the parent of the three app layers.
      const base = layouts.get(REFS.operator)?.config.rootfs.diff_ids[0] ?? "";
      const snapshots = await ctr(["snapshots", "--snapshotter", "overlayfs", "ls"]);
      const rows = snapshots.stdout.split("\n").map((line) => line.split(/\s+/));
      expect(rows.filter((row) => row[0] === base)).toHaveLength(1);
      expect(rows.filter((row) => row[1] === base)).toHaveLength(3);
    }, 300_000);

    it("gives each Node container the Dockerfile's entrypoint, user, environment and working directory", async () => {
      const expected = {
        operator: {
          // Node refuses --optimize-for-size in NODE_OPTIONS: the flags are on the command line.
          args: [
            "node",
            "--max-semi-space-size=1",
            "--optimize-for-size",
            "/app/operator/bin/tether-operator.js",
          ],
          env: ["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=65536"],
        },
        sidecar: {
          // Node refuses --no-maglev in NODE_OPTIONS: the flags are on the command line.
          args: [
            "node",
            "--snapshot-blob=/app/sidecar/dist/bundle/sidecar.blob",
            "--max-semi-space-size=4",
            "--no-maglev",
            "/app/sidecar/bin/tether-sidecar.js",
            "--config",
            "/etc/tether/envoy.yaml",
          ],
          env: ["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"],
        },
        demo: { args: ["node", "/app/e2e/dist/image/main.js"], env: [] as string[] },
      };
      for (const image of NODE_IMAGES) {
        const id = `${CTR_PREFIX}-spec-${image}`;
        const created = await ctr(["containers", "create", "--snapshotter", "overlayfs", REFS[image], id]);
        expect(created.code, created.stderr).toBe(0);
        const info = JSON.parse((await ctr(["containers", "info", id])).stdout) as {
          Spec: {
            process: { args: string[]; env: string[]; user: { uid: number; gid: number }; cwd: string };
          };
        };
        await ctr(["containers", "rm", id]);
        expect(info.Spec.process.args).toEqual(expected[image].args);
        expect(info.Spec.process.env).toEqual([PATH_ENV, "NODE_ENV=production", ...expected[image].env]);
        expect(info.Spec.process.user).toMatchObject({ uid: 65532, gid: 65532 });
        expect(info.Spec.process.cwd).toBe("/app");
      }
    });

    it("sidecar: validates a mounted example config; with no arguments reads /etc/tether/envoy.yaml", async () => {
      const example = join(REPO_ROOT, "examples/sidecar/envoy-http.yaml");
      const mount = ["--mount", `type=bind,src=${example},dst=/etc/tether/envoy.yaml,options=rbind:ro`];
      const validate = await ctr(
        runArgs(
          "sidecar-validate",
          REFS.sidecar,
          [
            "node",
            "/app/sidecar/bin/tether-sidecar.js",
            "--mode",
            "validate",
            "--config",
            "/etc/tether/envoy.yaml",
          ],
          mount,
        ),
      );
      expect(validate.code, validate.stderr).toBe(0);
      expect(validate.stdout).toContain("configuration '/etc/tether/envoy.yaml' OK");
      // No mount: the image's own CMD names the file, which is not there.
      const bare = await ctr(runArgs("sidecar-bare", REFS.sidecar, []));
      expect(bare.code).toBe(1);
      expect(bare.stderr).toContain("/etc/tether/envoy.yaml");
    });

    it("operator: loads every module and prints its usage", async () => {
      const help = await ctr(
        runArgs("operator-help", REFS.operator, ["node", "/app/operator/bin/tether-operator.js", "--help"]),
      );
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toContain("Usage: tether-operator [flags]");
    });

    it("demo: prints usage without a role; the policy server answers on loopback as uid 65532", async () => {
      const usage = await ctr(runArgs("demo-usage", REFS.demo, []));
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain("usage: tether-demo");

      const server = new ChildHandle({
        name: "demo policy server in a container",
        command: join(BIN_DIR, "ctr"),
        args: [
          "--address",
          sock(),
          "--namespace",
          "k8s.io",
          ...runArgs("demo-server", REFS.demo, [
            "node",
            "/app/e2e/dist/image/main.js",
            "policy-server",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--protocol",
            "http",
          ]),
        ],
      });
      longRunning.push(server);
      const port = await server.waitForLine((line) => {
        if (!line.startsWith("{")) return undefined;
        const event = JSON.parse(line) as { event?: string; port?: number };
        return event.event === "listening" ? event.port : undefined;
      }, 30_000);
      const res = await fetch(`http://127.0.0.1:${String(port)}/healthz`, {
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ok" });
      const pid = await taskPid("demo-server");
      expect(procStatus(pid, "Uid").split(/\s+/)).toEqual(["65532", "65532", "65532", "65532"]);
      expect(readFileSync(`/proc/${String(pid)}/environ`, "utf8").split("\0")).toContain(
        "NODE_ENV=production",
      );
      expect(readlinkSync(`/proc/${String(pid)}/cwd`)).toBe("/app");
      await ctr(["tasks", "kill", "--signal", "SIGTERM", `${CTR_PREFIX}-demo-server`]);
      expect(await server.exited).toEqual({ code: 0, signal: null });
    });

    it("pause: holds the sandbox as pid 1 and uid 65532, exits 0 on SIGTERM", async () => {
      const pause = new ChildHandle({
        name: "pause container",
        command: join(BIN_DIR, "ctr"),
        args: ["--address", sock(), "--namespace", "k8s.io", ...runArgs("pause", REFS.pause, [])],
      });
      longRunning.push(pause);
      const pid = await taskPid("pause");
      expect(procStatus(pid, "NSpid").split(/\s+/).at(-1)).toBe("1");
      expect(procStatus(pid, "Uid").split(/\s+/)[0]).toBe("65532");
      expect(readFileSync(`/proc/${String(pid)}/cmdline`, "utf8")).toBe("/pause\0");
      // (the clean-up removes leftover shim sockets by this name: it must be the right one)
      expect(existsSync(shimSocket(`${CTR_PREFIX}-pause`))).toBe(true);
      await ctr(["tasks", "kill", "--signal", "SIGTERM", `${CTR_PREFIX}-pause`]);
      expect(await pause.exited).toEqual({ code: 0, signal: null });
    });

    it("coredns: the static binary runs from the image", async () => {
      const version = await ctr(runArgs("coredns", REFS.coredns, ["/coredns", "-version"]));
      expect(version.code, version.stderr).toBe(0);
      expect(version.stdout).toContain(`CoreDNS-${COREDNS_VERSION.replace(/^v/, "")}`);
    });
  },
);
