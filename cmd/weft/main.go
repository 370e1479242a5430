// Command weft is the user CLI of the weft service mesh: `weft up` runs
// the whole mesh on one machine (internal/localmesh), `weft apply` adds
// configuration to it, `weft analyze` checks Istio configuration files the
// way weft-control loads them, `weft token` mints a workload's bootstrap
// token for the mesh CA, `weft proxy-status`, `weft proxy-config` and
// `weft dashboard` look into a running mesh, `weft iptables` installs
// transparent capture in a network namespace (internal/capture), `weft
// kube-inject` adds the sidecar to Kubernetes YAML (internal/inject), `weft
// demo-app` (hidden) is the sample application, `weft version` and `weft
// completion bash|zsh|fish` do what they say.
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
