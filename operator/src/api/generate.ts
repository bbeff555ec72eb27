/**
 * `npm run generate`: writes crds/*.yaml and the Helm chart's copy from the zod schemas, and the
 * chart's Grafana dashboard from operator/src/observability. `--check` writes nothing and exits 1 when a file is stale.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { grafanaDashboard } from "../observability/dashboard.ts";
import { crdFileName, customResourceDefinitionYaml, KINDS } from "./index.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Directories that hold generated CRDs: the top-level crds/ and the chart's crds/. */
export function crdDirectories(root: string = REPO_ROOT): string[] {
  const dirs = [join(root, "crds")];
  if (existsSync(join(root, "charts/tether/Chart.yaml"))) dirs.push(join(root, "charts/tether/crds"));
  return dirs;
}

/** Every generated file and its expected content. */
export function generatedFiles(root: string = REPO_ROOT): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of crdDirectories(root)) {
    for (const kind of KINDS) files.set(join(dir, crdFileName(kind)), customResourceDefinitionYaml(kind));
  }
  if (existsSync(join(root, "charts/tether/Chart.yaml"))) {
    files.set(
      join(root, "charts/tether/dashboards/tether.json"),
      JSON.stringify(grafanaDashboard(), null, 2) + "\n",
    );
  }
  return files;
}

/** Files whose content differs from what the schemas generate (missing files included). */
export function staleFiles(root: string = REPO_ROOT): string[] {
  const stale: string[] = [];
  for (const [path, content] of generatedFiles(root)) {
    if (!existsSync(path) || readFileSync(path, "utf8") !== content) stale.push(relative(root, path));
  }
  return stale;
}

function main(): void {
  const check = process.argv.includes("--check");
  if (check) {
    const stale = staleFiles();
    if (stale.length > 0) {
      console.error(`stale generated files (run npm run generate): ${stale.join(", ")}`);
      process.exit(1);
    }
    return;
  }
  for (const [path, content] of generatedFiles()) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    console.log(`wrote ${relative(REPO_ROOT, path)}`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
