// Writes sidecar/dist/bundle/: the sidecar as one minified script (sidecar.cjs) with @tether/envoy,
// @tether/xds/client, zod, yaml and re2js inside, and a Node start-up snapshot of it
// (sidecar.blob) with every module already evaluated, so a start deserializes a heap instead of
// parsing and compiling ~400 modules. That is most of the sidecar's start-up time and file-backed
// resident memory (bench/RESULTS.md, "Bundled sidecar and start-up snapshot"). Runs after `tsc -b`
// (it bundles envoy/ and xds/ from dist/):
//   node sidecar/scripts/bundle.ts          (part of the root `npm run build`)
// A snapshot only runs on the node binary that wrote it: this script writes it with the node that
// runs it, and sidecar.blob.json names that node's version for sidecar/bin/tether-sidecar.js to check.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { build, type BuildOptions, type Metafile, type Plugin } from "esbuild";

const here = path.dirname(new URL(import.meta.url).pathname);
const sidecarDir = path.resolve(here, "..");
const outdir = path.join(sidecarDir, "dist", "bundle");
const script = path.join(outdir, "sidecar.cjs");
const blob = path.join(outdir, "sidecar.blob");

/** Replaces one exact piece of a dependency's built file, failing the build when it is gone. */
function rewrite(name: string, file: RegExp, from: string, to: string): Plugin {
  return {
    name,
    setup(b) {
      b.onLoad({ filter: file }, (args) => {
        const source = readFileSync(args.path, "utf8");
        if (!source.includes(from)) throw new Error(`${args.path}: no ${from} to rewrite (${name})`);
        return { contents: source.replace(from, to), loader: "js" };
      });
    },
  };
}

// @tether/envoy requires re2js by name at the first safe_regex, and @tether/xds/client reads its
// decoding table beside its dist/ at the first xDS message. Both become plain require()s of bundled
// modules, still evaluated only on first use.
const re2jsInside = rewrite(
  "re2js-inside",
  /[\\/]envoy[\\/]dist[\\/]regex\.js$/,
  'createRequire(import.meta.url)("re2js")',
  'require("re2js")',
);
const wireTableInside = rewrite(
  "xds-wire-table-inside",
  /[\\/]xds[\\/]dist[\\/]wire-table\.js$/,
  'readFileSync(new URL("../generated/envoy-subset.wire.json", import.meta.url), "utf8")',
  'require("../generated/envoy-subset.wire.json?text")',
);
const jsonAsText: Plugin = {
  name: "json-as-text",
  setup(b) {
    b.onResolve({ filter: /\.json\?text$/ }, (args) => ({
      path: path.resolve(args.resolveDir, args.path.slice(0, -"?text".length)),
      namespace: "json-text",
    }));
    b.onLoad({ filter: /.*/, namespace: "json-text" }, (args) => ({
      contents: readFileSync(args.path, "utf8"),
      loader: "text",
    }));
  },
};

/**
 * Node cannot put some built-in modules' native state into a snapshot (node:http's parser binding
 * aborts the build). The bundle reaches these through objects whose properties load the real module
 * on first access, after the snapshot is deserialized.
 */
const LAZY_BUILTINS = ["http", "https", "http2", "tls", "net", "dns", "dns/promises", "perf_hooks", "crypto"];
const requireBuiltin = createRequire(import.meta.url);
const lazyBuiltins: Plugin = {
  name: "lazy-builtins",
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join("|").replace("/", "\\/")})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === "lazy-builtin"
        ? { path: args.path, external: true }
        : { path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" },
    );
    b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => {
      const keys = Object.keys(requireBuiltin(`node:${args.path}`) as object);
      return {
        contents:
          `let real; const load = () => (real ??= require("node:${args.path}"));\n` +
          `const lazy = {};\n` +
          `for (const key of ${JSON.stringify(keys)}) ` +
          `Object.defineProperty(lazy, key, { enumerable: true, get: () => load()[key] });\n` +
          `module.exports = lazy;\n`,
        loader: "js",
      };
    });
  },
};

/**
 * Parts only some configs use, each built as its own file beside the bundle (CHUNKS) and loaded from
 * there on first use, so they are not in the start-up snapshot: the process keeps the snapshot's heap
 * and its blob for life, and a source that is never run still costs its text in both. @tether/xds/client is
 * imported only for dynamic_resources, re2js only for a safe_regex.
 */
const CHUNKS: Record<string, { entry: string; file: string }> = {
  "@tether/xds/client": {
    entry: createRequire(import.meta.url).resolve("@tether/xds/client"),
    file: "xds.cjs",
  },
  re2js: {
    entry: createRequire(path.join(sidecarDir, "..", "envoy", "package.json")).resolve("re2js"),
    file: "re2js.cjs",
  },
};
const chunkLoader: Plugin = {
  name: "chunk-loader",
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(CHUNKS).join("|").replace("/", "\\/")})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: "chunk" }));
    // A CommonJS module in the bundle, so it runs at its first require or import(), not at start-up.
    // From the snapshot, the chunk sits beside the blob (`--snapshot-blob PATH` or `=PATH` in
    // execArgv): __dirname is where the snapshot was built. Run as a script, beside the script.
    b.onLoad({ filter: /.*/, namespace: "chunk" }, (args) => ({
      contents:
        `const path = require("node:path");\n` +
        `let dir = __dirname;\n` +
        `const argv = process.execArgv;\n` +
        `for (let i = 0; i < argv.length; i++) {\n` +
        `  if (argv[i] === "--snapshot-blob") dir = path.dirname(argv[i + 1]);\n` +
        `  else if (argv[i].startsWith("--snapshot-blob=")) dir = path.dirname(argv[i].slice("--snapshot-blob=".length));\n` +
        `}\n` +
        `const file = path.join(dir, ${JSON.stringify(CHUNKS[args.path]?.file)});\n` +
        `module.exports = process.getBuiltinModule("node:module").createRequire(file)(file);\n`,
      loader: "js",
    }));
  },
};

/** What every script here is built with: one minified CommonJS file for Node 24, with its map. */
const scriptOptions: BuildOptions = {
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node24",
  minify: true,
  // The sources are ES modules: keep their strict-mode semantics in the script.
  banner: { js: '"use strict";' },
  // No keepNames: it wraps every named function and closure in a defineProperty call, also the ones
  // created per request (~7 % more CPU per request in bench/RESULTS.md). Stack frames name minified
  // functions either way; the source map restores them.
  // A linked map costs nothing at run time; `node --enable-source-maps` reads it when debugging.
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
};

/**
 * The sidecar's ADS client decodes with its own table and speaks HTTP/2 itself: protobufjs'
 * reflection (and the descriptor it parses) or gRPC in the bundle or a chunk would cost every
 * ADS-configured sidecar ~17 MB of RSS (bench/RESULTS.md), for example after an import of the root
 * `@tether/xds` in place of `@tether/xds/client`. The build fails instead.
 */
function refuseHeavy(file: string, metafile: Metafile): void {
  const heavy = Object.keys(metafile.inputs).filter((input) =>
    /node_modules[\\/](protobufjs|@grpc)[\\/]|envoy-subset\.json/.test(input),
  );
  if (heavy.length > 0) throw new Error(`${file} must not include ${heavy.join(", ")}`);
}

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
for (const chunk of Object.values(CHUNKS)) {
  const built = await build({
    ...scriptOptions,
    entryPoints: [chunk.entry],
    outfile: path.join(outdir, chunk.file),
    plugins: [wireTableInside, jsonAsText],
    metafile: true,
  });
  refuseHeavy(chunk.file, built.metafile);
}
const result = await build({
  ...scriptOptions,
  entryPoints: [path.join(sidecarDir, "src", "snapshot.ts")],
  outfile: script,
  plugins: [re2jsInside, chunkLoader, lazyBuiltins],
  metafile: true,
});
refuseHeavy(path.basename(script), result.metafile);
const bytes = result.metafile.outputs[path.relative(process.cwd(), script)]?.bytes ?? 0;
// Without node's code cache for its own built-in modules: the running process keeps the V8 part of
// the blob for its whole life, and the cache made it 4.5 MB larger (idle RSS 70.7 -> 66.2 MB); the
// few built-ins loaded after start-up (net, http's parser) compile from source in a few milliseconds.
const snapshotConfig = path.join(outdir, "snapshot-config.json");
writeFileSync(snapshotConfig, JSON.stringify({ builder: script, withoutCodeCache: true }));
execFileSync(process.execPath, ["--snapshot-blob", blob, "--build-snapshot-config", snapshotConfig], {
  cwd: outdir,
  stdio: ["ignore", "ignore", "pipe"],
});
rmSync(snapshotConfig);
writeFileSync(
  `${blob}.json`,
  JSON.stringify({ node: process.version, arch: process.arch, platform: process.platform }) + "\n",
);
process.stdout.write(
  `${path.relative(process.cwd(), script)}  ${(bytes / 1024).toFixed(0)} KB\n` +
    `${path.relative(process.cwd(), blob)}  ${(readFileSync(blob).length / 1048576).toFixed(1)} MB (node ${process.version})\n`,
);
