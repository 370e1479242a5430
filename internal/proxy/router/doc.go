// Package router compiles an Envoy envoy.config.route.v3.RouteConfiguration
// into an immutable, pre-compiled Table and matches requests against it.
//
// Compile runs off the request path: it validates the configuration, rejects
// every field weft-proxy does not implement (naming its field path), reads
// direct-response bodies from disk and compiles regular expressions and
// header-value formats. The resulting Table is immutable and safe for
// concurrent use; a new configuration is compiled into a new Table that the
// caller swaps in atomically.
//
// On the request path the HTTP connection manager calls, in order:
//
//	t.NormalizeHost(req, localPort)      // strip_*_host_port, strip_trailing_host_dot
//	route, vhost := t.Route(req)         // nil route: 404 with response flag NR
//	switch route.Kind() {
//	case ActionRedirect, ActionDirectResponse:
//		status, location := route.RedirectLocation(req, buf)
//		... send the local reply, then route.ApplyResponseHeaders(resp, req, nil, vars)
//	case ActionRoute:
//		target := route.PickCluster(random)
//		route.Hash(req, vars, &lbCtx, nil)           // hash_policy
//		route.FinalizeRequest(req, target, vars)     // header mutations, host and path rewrites
//		... proxy; on the response: route.ApplyResponseHeaders(resp, req, target, vars)
//	}
//
// Matching (Table.Route), cluster picking, hashing without a generated cookie,
// header mutations and prefix rewrites do not allocate once the request's
// header arena has grown. Regex rewrites, multi-valued headers matched by a
// regex and generated hash cookies do allocate; the methods say so.
//
// The package does no networking and knows nothing of the connection manager:
// per-stream values that header formats print come from the Vars interface.
package router
