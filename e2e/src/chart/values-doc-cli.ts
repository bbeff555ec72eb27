/** `npm run chart:readme [-- --check]`: regenerates the values table of charts/tether/README.md. */
import { CHART_DIR } from "./index.ts";
import { main } from "./values-doc.ts";

process.exitCode = main(process.argv.slice(2), CHART_DIR);
