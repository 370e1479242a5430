// Package bootstrap loads Envoy v3 bootstrap files (YAML or JSON, like
// Envoy's -c and --config-yaml) into the real Envoy API types and checks
// them against the subset of the API that weft-proxy implements.
//
// Loading (Load, Parse) decodes with protojson, rejecting unknown fields and
// resolving google.protobuf.Any @type only for the extension types weft-proxy
// supports. Validation (Validate) runs the protoc-gen-validate rules that
// go-control-plane generates, the allowlist of supported fields and values
// (supported.go), and the cross-reference checks Envoy makes at start-up
// (referenced clusters exist, names are unique, the router filter is last).
// LoadAndValidate does both and adds YAML line numbers to every problem.
//
// Every problem is a *FieldError naming the file, the line where known, the
// field path (static_resources.clusters[0].lb_policy) and the reason; all
// problems of one document are returned together as Errors.
//
// CheckSupported and ValidateResource work on single xDS resources
// (Listener, Cluster, RouteConfiguration, ClusterLoadAssignment) too, for the
// xDS client.
package bootstrap
