// Command xds-check judges Tether's xDS work with Envoy's own protos and go-control-plane:
//
//	xds-check bootstrap FILE...        decode (protojson, unknown fields are errors) and ValidateAll
//	xds-check client --server H:P ...  an ADS state-of-the-world client that validates, ACKs and NACKs
//	xds-check server --listen H:P ...  go-control-plane's reference ADS server serving a snapshot file
//
// See README.md beside this file.
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  xds-check bootstrap FILE...
  xds-check client --server HOST:PORT --node-id ID --node-cluster C [--timeout 10s] [--expect cluster,endpoint,listener,route] [--nack-first TYPE]
  xds-check server --listen HOST:PORT --snapshot FILE
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "bootstrap":
		os.Exit(runBootstrap(args, os.Stdout))
	case "client":
		os.Exit(runClient(args))
	case "server":
		os.Exit(runServer(args))
	default:
		usage()
	}
}
