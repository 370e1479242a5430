package translate

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// routeOpts say for what HTTP routes are built.
type routeOpts struct {
	// port is the service (sidecar) or server (gateway) port: matches with
	// another port are dropped, destinations without a port use it.
	port uint32
	// proxyless: grpc-go reads the timeout from max_stream_duration.
	proxyless bool
	// gateway, for gateway routes, is the Gateway ("ns/name") a match's
	// gateways must name; "" means the scope's gateways.
	gateway string
	// inbound: routes of an inbound listener, which get no retry policy
	// (see defaultRoute).
	inbound bool
}

// defaultRoute is Istio's route for a service no VirtualService names:
// every path to the service's cluster, no timeout (Istio's "notimeout",
// which disables Envoy's 15 s default), the grpc-timeout header honoured
// without a cap, and Istio's default retry policy (with previous_hosts
// even when hashing, as Istio's BuildDefaultHTTPOutboundRoute). Inbound
// routes get no retry policy: Istio ≥ 1.24 retries "reset-before-request"
// there, which weft-proxy does not implement; the application is local.
func defaultRoute(cluster string, hash *routev3.RouteAction_HashPolicy, o routeOpts) *routev3.Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	setTimeout(a, nil, o)
	if !o.inbound {
		a.RetryPolicy = defaultRetryPolicy(false)
	}
	if hash != nil {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{hash}
	}
	return &routev3.Route{
		Name:   "default",
		Match:  translateMatch(nil),
		Action: &routev3.Route_Route{Route: a},
	}
}

// setTimeout sets the route timeout: the VirtualService's, else 0 (no
// timeout; Istio's default). Sidecars and gateways also honour a gRPC
// client's grpc-timeout header up to that value (max_stream_duration
// grpc_timeout_header_max, the replacement of the deprecated
// max_grpc_timeout Istio sets); grpc-go reads max_stream_duration.
func setTimeout(a *routev3.RouteAction, timeout *durationpb.Duration, o routeOpts) {
	if timeout == nil {
		timeout = zeroDuration
	}
	a.Timeout = timeout
	if o.proxyless {
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: timeout}
		return
	}
	a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: timeout}
}

// httpRoutes translates vs's http routes for one port, as Istio's
// BuildHTTPRoutesForVirtualService: one Envoy route per match (several
// matches are alternatives), routes whose matches name another port,
// another gateway or other source labels dropped, nothing after a
// catch-all route. An empty result means vs has nothing for this port.
func (s *scope) httpRoutes(vs *vsEntry, o routeOpts) []*routev3.Route {
	var out []*routev3.Route
	for _, h := range vs.spec.Http {
		if h.Delegate != nil {
			continue // not supported yet; the static warnings say so
		}
		if len(h.Match) == 0 {
			out = append(out, s.translateRoute(vs, h, nil, o))
			break
		}
		catchAll := false
		for _, m := range h.Match {
			r := s.matchApplies(vs, m, o)
			if !r {
				continue
			}
			route := s.translateRoute(vs, h, m, o)
			out = append(out, route)
			if isCatchAll(route) {
				catchAll = true
				break
			}
		}
		if catchAll {
			break
		}
	}
	return out
}

// matchApplies evaluates the parts of a match known when generating: its
// port, its gateways (else its source labels and namespace), as Istio's
// sourceMatchHTTP.
func (s *scope) matchApplies(vs *vsEntry, m *networking.HTTPMatchRequest, o routeOpts) bool {
	if m.Port != 0 && m.Port != o.port {
		return false
	}
	if len(m.Gateways) > 0 {
		if o.gateway != "" {
			return namesGateway(m.Gateways, vs.obj.Namespace, o.gateway)
		}
		return s.gatewayMatches(m.Gateways, vs.obj.Namespace)
	}
	if !s.sourceMatches(m, m.SourceLabels) {
		return false
	}
	return m.SourceNamespace == "" || m.SourceNamespace == s.ns
}

// translateRoute builds one route from an http route and one of its
// matches (nil: match everything).
func (s *scope) translateRoute(vs *vsEntry, h *networking.HTTPRoute, m *networking.HTTPMatchRequest, o routeOpts) *routev3.Route {
	name := h.Name
	if m != nil && m.Name != "" {
		name += "." + m.Name
	}
	r := &routev3.Route{Name: name, Match: translateMatch(m), Metadata: vs.metadata}
	r.TypedPerFilterConfig = faultPerFilterConfig(h.Fault) // any action, as Istio
	ops := translateHeaders(h.Headers)
	r.RequestHeadersToAdd, r.RequestHeadersToRemove = ops.reqAdd, ops.reqRemove
	r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = ops.respAdd, ops.respRemove
	switch {
	case h.Redirect != nil:
		applyRedirect(r, h.Redirect, o.port)
	case h.DirectResponse != nil:
		applyDirectResponse(r, h.DirectResponse)
	default:
		s.applyDestinations(r, vs, h, ops.authority, o)
	}
	return r
}

// applyDestinations sets the route action: timeout, rewrites, mirrors,
// the destination cluster or weighted clusters, destination-level header
// operations, hash policies and the retry policy (Istio's
// applyHTTPRouteDestination; the retry policy keeps previous_hosts unless
// the route's single destination hashes).
func (s *scope) applyDestinations(r *routev3.Route, vs *vsEntry, h *networking.HTTPRoute, authority string, o routeOpts) {
	a := &routev3.RouteAction{}
	setTimeout(a, h.Timeout, o)
	a.RequestMirrorPolicies = s.mirrorPolicies(h, vs.obj.Namespace, o.port)
	if rw := h.Rewrite; rw != nil {
		if re := rw.UriRegexRewrite; re != nil {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: re.Match},
				Substitution: re.Rewrite,
			}
		} else if rw.Uri != "" {
			a.PrefixRewrite = rw.Uri
		}
		if rw.Authority != "" {
			authority = rw.Authority
		}
	}
	if authority != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
	}
	r.Action = &routev3.Route_Route{Route: a}
	if len(h.Route) == 1 {
		d := h.Route[0]
		name, host, port := s.destination(d.Destination, vs.obj.Namespace, o.port)
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: name}
		dops := translateHeaders(d.Headers)
		r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, dops.reqAdd...)
		r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, dops.reqRemove...)
		r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, dops.respAdd...)
		r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, dops.respRemove...)
		// A route-level authority rewrite wins over a destination's, so
		// that one and several destinations behave alike (Istio).
		if dops.authority != "" && a.HostRewriteSpecifier == nil {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: dops.authority}
		}
		hp := s.hashPolicy(host, port, d.GetDestination().GetSubset())
		if hp != nil {
			a.HashPolicy = append(a.HashPolicy, hp)
		}
		a.RetryPolicy = retryPolicy(h.Retries, hp != nil)
		return
	}
	a.RetryPolicy = retryPolicy(h.Retries, false)
	wc := &routev3.WeightedCluster{}
	defer func() {
		if len(wc.Clusters) == 0 {
			// No destination with a weight: validation rejects this;
			// should it get here, answer 503 rather than emit an invalid
			// route.
			r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 503}}
		}
	}()
	for _, d := range h.Route {
		if d.Weight == 0 {
			continue // Istio drops zero-weight destinations
		}
		name, host, port := s.destination(d.Destination, vs.obj.Namespace, o.port)
		cw := &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(uint32(d.Weight))}
		dops := translateHeaders(d.Headers)
		cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = dops.reqAdd, dops.reqRemove
		cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = dops.respAdd, dops.respRemove
		if dops.authority != "" {
			cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: dops.authority}
		}
		wc.Clusters = append(wc.Clusters, cw)
		if hp := s.hashPolicy(host, port, d.GetDestination().GetSubset()); hp != nil {
			a.HashPolicy = append(a.HashPolicy, hp)
		}
	}
	a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
}

// destination resolves a route destination written in namespace ns: the
// cluster name, the FQDN and the port. Without an explicit port, a
// single-port service's port is used, else the port the route is built for
// (Istio's GetDestinationCluster).
func (s *scope) destination(d *networking.Destination, ns string, listenPort uint32) (cluster, host string, port uint32) {
	host = s.idx.fqdn(d.GetHost(), ns)
	port = listenPort
	if d.GetPort() != nil {
		port = d.GetPort().GetNumber()
	} else if svc := s.serviceFor(host, ns); svc != nil && len(svc.Ports) == 1 {
		port = svc.Ports[0].Number
	}
	return outboundCluster(port, d.GetSubset(), host), host, port
}

// hashPolicy returns the route hash policy for a destination whose
// DestinationRule uses consistent hashing, nil otherwise. The rule's
// settings for the resolved port apply (Istio looks at port-level settings
// only when the destination names its port; weft uses the port the cluster
// is built for, so the route and the cluster always agree).
func (s *scope) hashPolicy(host string, port uint32, subset string) *routev3.RouteAction_HashPolicy {
	ch := s.policy(host, port, subset).GetLoadBalancer().GetConsistentHash()
	return consistentHashPolicy(ch)
}

// consistentHashPolicy translates a consistentHash key (Istio's
// consistentHashToHashPolicy).
func consistentHashPolicy(ch *networking.LoadBalancerSettings_ConsistentHashLB) *routev3.RouteAction_HashPolicy {
	switch k := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: k.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: k.HttpCookie.GetName(), Ttl: k.HttpCookie.GetTtl(), Path: k.HttpCookie.GetPath()},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: k.UseSourceIp},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: k.HttpQueryParameterName},
		}}
	}
	return nil
}

// applyRedirect sets a redirect action, as Istio's ApplyRedirect: the
// derived port is the port the route is built for, and :80 for http (:443
// for https) is left out.
func applyRedirect(r *routev3.Route, rd *networking.HTTPRedirect, port uint32) {
	a := &routev3.RedirectAction{HostRedirect: rd.Authority}
	switch {
	case rd.PrefixRewrite != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rd.PrefixRewrite}
	case rd.Uri != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: rd.Uri}
	}
	if rd.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	if rd.RedirectPort != nil {
		switch p := rd.RedirectPort.(type) {
		case *networking.HTTPRedirect_DerivePort:
			if p.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
				a.PortRedirect = port
			}
		case *networking.HTTPRedirect_Port:
			a.PortRedirect = p.Port
		}
		scheme := rd.Scheme
		if scheme == "" {
			scheme = "http"
		}
		if (a.PortRedirect == 80 && scheme == "http") || (a.PortRedirect == 443 && scheme == "https") {
			a.PortRedirect = 0
		}
	}
	switch rd.RedirectCode {
	case 302:
		a.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		a.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		a.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		a.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default: // 0 and 301; validation rejects other codes
		a.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	}
	r.Action = &routev3.Route_Redirect{Redirect: a}
}

// applyDirectResponse sets a direct response action.
func applyDirectResponse(r *routev3.Route, dr *networking.HTTPDirectResponse) {
	a := &routev3.DirectResponseAction{Status: dr.Status}
	switch b := dr.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		a.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: b.String_}}
	case *networking.HTTPBody_Bytes:
		a.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b.Bytes}}
	}
	r.Action = &routev3.Route_DirectResponse{DirectResponse: a}
}

// headerOps are the Envoy header mutations of an Istio Headers block.
type headerOps struct {
	reqAdd, respAdd       []*corev3.HeaderValueOption
	reqRemove, respRemove []string
	// authority is a set/add of ":authority" or "host": a host rewrite.
	authority string
}

// translateHeaders translates request and response header operations, as
// Istio's TranslateHeadersOperations: set overwrites, add appends, each
// sorted by name; pseudo-headers and host are not mutated (an authority
// value becomes a host rewrite, set winning over add).
func translateHeaders(h *networking.Headers) headerOps {
	var ops headerOps
	if h == nil {
		return ops
	}
	var setAuth, addAuth string
	ops.reqAdd, setAuth = headerValues(h.GetRequest().GetSet(), false)
	var add []*corev3.HeaderValueOption
	add, addAuth = headerValues(h.GetRequest().GetAdd(), true)
	ops.reqAdd = append(ops.reqAdd, add...)
	ops.respAdd, _ = headerValues(h.GetResponse().GetSet(), false)
	add, _ = headerValues(h.GetResponse().GetAdd(), true)
	ops.respAdd = append(ops.respAdd, add...)
	ops.reqRemove = dropInternal(h.GetRequest().GetRemove())
	ops.respRemove = dropInternal(h.GetResponse().GetRemove())
	ops.authority = addAuth
	if setAuth != "" {
		ops.authority = setAuth
	}
	return ops
}

// headerValues converts a set or add map (sorted by name); it returns the
// authority value when the map sets one.
func headerValues(m map[string]string, appendValue bool) ([]*corev3.HeaderValueOption, string) {
	var out []*corev3.HeaderValueOption
	authority := ""
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, headerAuthority) || strings.EqualFold(k, "host") {
			authority = m[k]
		}
		if isInternalHeader(k) {
			continue
		}
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if appendValue {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: m[k]},
			AppendAction: action,
		})
	}
	return out, authority
}

// isInternalHeader: pseudo-headers and host cannot be mutated.
func isInternalHeader(k string) bool {
	return strings.HasPrefix(k, ":") || strings.EqualFold(k, "host")
}

// dropInternal removes pseudo-headers and host from a remove list.
func dropInternal(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !isInternalHeader(k) {
			out = append(out, k)
		}
	}
	return out
}

// sortRoutesCatchAllLast moves catch-all routes to the end, keeping the
// order of the others (Istio's SortVHostRoutes, for gateway virtual hosts
// that collect the routes of several VirtualServices).
func sortRoutesCatchAllLast(routes []*routev3.Route) []*routev3.Route {
	sort.SliceStable(routes, func(i, j int) bool { return !isCatchAll(routes[i]) && isCatchAll(routes[j]) })
	return routes
}
