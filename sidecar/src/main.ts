// tether-sidecar: --config FILE [--mode serve|validate] [--log-level LEVEL] [drain flags, see shutdown.ts]
//                 [--service-node ID] [--service-cluster NAME] [--xds-token-file PATH]
// The unbundled entry (`node sidecar/src/main.ts`); what ships is the bundle of snapshot.ts.
import { main } from "./cli.ts";

await main(process.argv.slice(2));
