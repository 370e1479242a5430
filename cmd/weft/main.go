// Command weft is the user CLI of the weft service mesh. Today it has
// `weft analyze`, which checks Istio configuration files the way
// weft-control loads them, and `weft token`, which mints a workload's
// bootstrap token for the mesh CA; the root command is where the other user
// commands (up, proxy-status, proxy-config, dashboard, install) will go.
//
// Exit status: 0 when the command succeeded (for analyze: no errors,
// warnings allowed), 1 otherwise.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
