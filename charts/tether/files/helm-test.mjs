// `helm test`: the operator answers on its admin port, its Deployment has a ready replica, and the
// API server serves Tether's four kinds. Runs in the operator image (Node); prints one line per check.
import { readFileSync } from "node:fs";

const env = process.env;
// The pod's own API server and token; tests of this script point them elsewhere.
const sa = env.TETHER_TEST_SA_DIR || "/var/run/secrets/kubernetes.io/serviceaccount";
const token = readFileSync(`${sa}/token`, "utf8").trim();
const api = env.TETHER_TEST_API || "https://kubernetes.default.svc";
let failed = 0;

function report(ok, check, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${check}${detail ? `: ${detail}` : ""}`);
  if (!ok) failed++;
}

async function get(url, auth) {
  const headers = auth ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
}

async function check(name, fn) {
  try {
    await fn();
  } catch (err) {
    report(false, name, err instanceof Error ? err.message : String(err));
  }
}

await check("operator /readyz", async () => {
  if (env.TETHER_TEST_READYZ === "") return report(true, "operator /readyz", "skipped (metrics.service.enabled=false)");
  const r = await get(env.TETHER_TEST_READYZ, false);
  report(r.status === 200, "operator /readyz", `${env.TETHER_TEST_READYZ} answered ${r.status}`);
});

await check("operator Deployment ready", async () => {
  const r = await get(`${api}/apis/apps/v1/namespaces/${env.TETHER_TEST_NAMESPACE}/deployments/${env.TETHER_TEST_DEPLOYMENT}`, true);
  if (r.status !== 200) return report(false, "operator Deployment ready", `GET answered ${r.status}`);
  const d = JSON.parse(r.text);
  const ready = d.status?.readyReplicas ?? 0;
  const image = d.spec?.template?.spec?.containers?.[0]?.image ?? "?";
  report(ready >= 1 || d.spec?.replicas === 0, "operator Deployment ready", `${ready}/${d.spec?.replicas} ready, image ${image}`);
});

await check("CRDs served", async () => {
  const r = await get(`${api}/apis/tether.dev/v1alpha1`, true);
  if (r.status !== 200) return report(false, "CRDs served", `/apis/tether.dev/v1alpha1 answered ${r.status}`);
  const served = new Set(JSON.parse(r.text).resources.map((x) => x.name));
  const missing = ["policyserverclusters", "agents", "brokers", "proxyroutes"].filter((k) => !served.has(k));
  report(missing.length === 0, "CRDs served", missing.length === 0 ? "tether.dev/v1alpha1: all four kinds" : `missing ${missing.join(", ")}`);
});

process.exitCode = failed === 0 ? 0 : 1;
