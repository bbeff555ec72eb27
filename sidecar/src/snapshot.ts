// The shipped sidecar's entry (sidecar/scripts/bundle.ts bundles it into dist/bundle/sidecar.cjs and
// evaluates that into a start-up snapshot, dist/bundle/sidecar.blob). Building the snapshot evaluates
// every module and builds nothing else: the command line is read, and the config loaded, when the
// snapshot is deserialized (`node --snapshot-blob sidecar.blob <any script path> --config …`, the
// script path standing where a script would, as sidecar/bin/tether-sidecar.js passes it). Run
// without a snapshot (`node sidecar.cjs --config …`) it starts at once.
import v8 from "node:v8";
import { main } from "./cli.ts";

if (v8.startupSnapshot.isBuildingSnapshot()) {
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    void main(process.argv.slice(2));
  });
} else {
  void main(process.argv.slice(2));
}
