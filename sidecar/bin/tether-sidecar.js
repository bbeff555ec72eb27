#!/usr/bin/env -S node --max-semi-space-size=4 --no-maglev
// The flags are the image's NODE_OPTIONS (sidecar/Dockerfile), for `npx tether-sidecar` and a direct
// exec; `node sidecar/bin/tether-sidecar.js` runs without them.
// Runs the built sidecar: the bundle `npm run build` writes to dist/bundle/ (sidecar/scripts/bundle.ts),
// what the image ships. Plain JS so npm can link it before a build, and so an old Node gets a clear
// message instead of a crash deep inside a dependency.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  console.error(
    `tether-sidecar: needs Node.js 24 or newer, found ${process.version}. Run it through npx/npm (which use the ` +
      "pinned runtime in node_modules/.bin), or: export PATH=$PWD/node_modules/.bin:$PATH",
  );
  process.exit(1);
}
const main = new URL("../dist/bundle/main.js", import.meta.url);
const { existsSync } = await import("node:fs");
if (!existsSync(main)) {
  console.error(
    `tether-sidecar: not built yet (${main.pathname} is missing): run npm run build (tsc -b, then the bundle)`,
  );
  process.exit(1);
}
await import(main.href);
