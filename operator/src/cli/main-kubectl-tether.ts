/** Entry point of the `kubectl-tether` executable (operator/bin/kubectl-tether). */
import { systemKubectl } from "./kubectl.ts";
import { runPlugin } from "./kubectl-tether.ts";

process.exitCode = await runPlugin(process.argv.slice(2), {
  kubectl: systemKubectl(process.env),
  out: (line) => {
    process.stdout.write(`${line}\n`);
  },
  fetchText: async (url) => {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    return res.text();
  },
});
