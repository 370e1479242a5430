package e2e

// The pieces of Envoy bootstrap YAML the tests' bootstraps share, written
// once and joined with each test's own fields (with +, so that the
// bootstraps stay constants). Each piece starts with a newline and ends
// without one, at the column noted; {{.host}} and {{.port}} are Render
// variables.
const (
	// adminHead opens a bootstrap: the admin on 127.0.0.1:0 and the
	// listeners key (listeners follow at column 2).
	adminHead = `
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:`

	// frontListener is the listener "front" on 127.0.0.1:0 up to its
	// address (more listener fields follow at column 4).
	frontListener = `
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}`

	// frontHCM is front's one filter chain: the HTTP connection manager
	// with stat_prefix front (more of its fields follow at column 10).
	frontHCM = `
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front`

	// routerFilter is a connection manager's http_filters: the router
	// alone (column 10).
	routerFilter = `
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`

	// allToBackend is a connection manager's route_config sending every
	// host and path to the cluster "backend", then routerFilter.
	allToBackend = `
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: backend}` + routerFilter

	// backendCluster opens the STATIC cluster "backend" (column 2, in a
	// clusters list); more cluster fields may follow at column 4, then
	// backendEndpoint.
	backendCluster = `
  - name: backend
    type: STATIC
    connect_timeout: 1s`

	// backendEndpoint is a cluster's one endpoint, {{.host}}:{{.port}},
	// for the cluster "backend"; it ends the bootstrap (final newline).
	backendEndpoint = `
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.host}}, port_value: {{.port}}}}}
`
)
