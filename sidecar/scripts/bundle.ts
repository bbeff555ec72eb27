// Writes sidecar/dist/bundle/: the sidecar as one minified ESM file (main.js) with @tether/envoy, zod,
// yaml and re2js inside, and @tether/xds (the ADS client, protobufjs) as a chunk loaded only when a
// bootstrap has dynamic_resources. Node then resolves and compiles one file instead of ~400 modules,
// which is what the sidecar's start-up time and resident memory are mostly made of
// (bench/RESULTS.md, "Bundled sidecar"). Runs after `tsc -b` (it bundles envoy/ and xds/ from dist/):
//   node sidecar/scripts/bundle.ts          (part of the root `npm run build`)
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { build, type Plugin } from "esbuild";

const here = path.dirname(new URL(import.meta.url).pathname);
const sidecarDir = path.resolve(here, "..");
const outdir = path.join(sidecarDir, "dist", "bundle");
const descriptor = path.resolve(sidecarDir, "../xds/generated/envoy-subset.json");

/**
 * @tether/xds reads its protobuf descriptor next to its own dist/ at first use; in the bundle the
 * JSON sits beside the chunks, so the chunk reads it from there (still only when xDS is used).
 */
const DESCRIPTOR_READ = 'new URL("../generated/envoy-subset.json", import.meta.url)';
const xdsDescriptorBesideBundle: Plugin = {
  name: "xds-descriptor-beside-bundle",
  setup(b) {
    b.onLoad({ filter: /[\\/]xds[\\/]dist[\\/]descriptor\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      if (!source.includes(DESCRIPTOR_READ)) {
        throw new Error(`${args.path}: no ${DESCRIPTOR_READ} to point at the bundled descriptor`);
      }
      return {
        contents: source.replace(DESCRIPTOR_READ, 'new URL("./envoy-subset.json", import.meta.url)'),
        loader: "js",
      };
    });
  },
};

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const result = await build({
  entryPoints: { main: path.join(sidecarDir, "src", "main.ts") },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node24",
  outdir,
  chunkNames: "[name]-[hash]",
  minify: true,
  // Linked maps cost nothing at run time; `node --enable-source-maps` uses them when debugging.
  sourcemap: "linked",
  legalComments: "linked",
  // Error classes keep their names in logs and stack traces.
  keepNames: true,
  // yaml (and protobufjs) are CommonJS and require() Node's built-ins, which an ES module has no
  // `require` for: give each output file one.
  banner: { js: 'import{createRequire as __tetherRequire}from"node:module";const require=__tetherRequire(import.meta.url);' },
  plugins: [xdsDescriptorBesideBundle],
  metafile: true,
  logLevel: "warning",
});
copyFileSync(descriptor, path.join(outdir, "envoy-subset.json"));
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith(".js")) process.stdout.write(`${file}  ${(out.bytes / 1024).toFixed(0)} KB\n`);
}
