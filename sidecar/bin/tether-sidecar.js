#!/usr/bin/env -S node --max-semi-space-size=4 --no-maglev
// The flags are the image's (sidecar/Dockerfile's ENTRYPOINT), for `npx tether-sidecar` and a direct
// exec; `node sidecar/bin/tether-sidecar.js` runs without them.
// Runs the built sidecar, what the image ships (`npm run build` writes it, sidecar/scripts/bundle.ts):
// dist/bundle/sidecar.blob, a start-up snapshot of the bundled sidecar, by replacing this process
// with `node --snapshot-blob sidecar.blob <this file> <arguments>` (same pid, same node options);
// if the snapshot was written by another node binary, the bundle itself (dist/bundle/sidecar.cjs).
// Plain JS so npm can link it before a build, and so an old Node gets a clear message instead of a
// crash deep inside a dependency.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  console.error(
    `tether-sidecar: needs Node.js 24 or newer, found ${process.version}. Run it through npx/npm (which use the ` +
      "pinned runtime in node_modules/.bin), or: export PATH=$PWD/node_modules/.bin:$PATH",
  );
  process.exit(1);
}
const { existsSync, readFileSync, statSync } = await import("node:fs");
const { fileURLToPath } = await import("node:url");
const script = fileURLToPath(new URL("../dist/bundle/sidecar.cjs", import.meta.url));
const blob = fileURLToPath(new URL("../dist/bundle/sidecar.blob", import.meta.url));
if (!existsSync(script) || !existsSync(blob)) {
  console.error(`tether-sidecar: not built yet (${script} or its .blob is missing): run npm run build`);
  process.exit(1);
}
// In a checkout, a `tsc -b` after the last `npm run build` means the bundle is older than the code.
const buildInfo = fileURLToPath(new URL("../tsconfig.tsbuildinfo", import.meta.url));
if (existsSync(buildInfo) && statSync(buildInfo).mtimeMs > statSync(blob).mtimeMs) {
  console.error(
    `tether-sidecar: ${blob} is older than the last TypeScript build (${buildInfo}): ` +
      "run npm run build, which also writes the bundle",
  );
  process.exit(1);
}
let builtBy;
try {
  builtBy = JSON.parse(readFileSync(`${blob}.json`, "utf8"));
} catch {
  builtBy = {};
}
if (
  builtBy.node === process.version &&
  builtBy.arch === process.arch &&
  builtBy.platform === process.platform
) {
  process.execve(
    process.execPath,
    [
      process.execPath,
      ...process.execArgv,
      "--snapshot-blob",
      blob,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    // glibc malloc as the image sets it (sidecar/Dockerfile's ENV; a value already set wins): two
    // arenas, and a fixed mmap threshold, so the blocks freed after start-up go back to the kernel
    // instead of staying in the heap (idle RSS -1.9 MB).
    { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "131072", ...process.env },
  );
}
console.error(
  `tether-sidecar: ${blob} was written by node ${builtBy.node ?? "?"}, this is ${process.version}: ` +
    "starting without it (slower, more memory); npm run build writes one for this node",
);
const { createRequire } = await import("node:module");
createRequire(import.meta.url)(script);
