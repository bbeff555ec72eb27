#!/usr/bin/env node
// Runs the built sidecar (`npm run build` first). Kept as plain JS so npm can link it before a build.
await import("../dist/main.js");
