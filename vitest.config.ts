import { defineConfig } from "vitest/config";

// One runner for every part. `unit` tests sit beside the code; `integration` tests (real
// sockets, child processes, a real kube-apiserver) live in <part>/test/.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{operator,sidecar,e2e,bench,xds,envoy}/src/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["{operator,sidecar,e2e,xds}/test/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Integration files start real processes; two cores run them one file at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
