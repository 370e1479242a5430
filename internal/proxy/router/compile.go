package router

import (
	"os"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// defaultMaxDirectResponseBody is Envoy's
// DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES.
const defaultMaxDirectResponseBody = 4096

type compiler struct {
	opts             CompileOptions
	maxBody          uint32
	validateClusters bool
}

func (c *compiler) compileTable(rc *routev3.RouteConfiguration) (*Table, error) {
	if rc == nil {
		return nil, &ConfigError{Err: errString("route configuration is required")}
	}
	if err := checkFields(rc, "", "name", "virtual_hosts", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove", "most_specific_header_mutations_wins",
		"validate_clusters", "max_direct_response_body_size_bytes", "ignore_port_in_host_matching",
		"ignore_path_parameters_in_path_matching", "metadata",
		"typed_per_filter_config"); err != nil {
		return nil, err
	}
	t := &Table{
		name:                 rc.GetName(),
		ignorePortInHost:     rc.GetIgnorePortInHostMatching(),
		ignorePathParams:     rc.GetIgnorePathParametersInPathMatching(),
		mostSpecificWins:     rc.GetMostSpecificHeaderMutationsWins(),
		hostPort:             c.opts.HostPort,
		stripTrailingHostDot: c.opts.StripTrailingHostDot,
		suppressEnvoyHeaders: c.opts.SuppressEnvoyHeaders,
	}
	c.maxBody = defaultMaxDirectResponseBody
	if m := rc.GetMaxDirectResponseBodySizeBytes(); m != nil {
		c.maxBody = m.GetValue()
	}
	c.validateClusters = c.opts.ValidateClustersDefault
	if v := rc.GetValidateClusters(); v != nil {
		c.validateClusters = v.GetValue()
	}
	var err error
	if t.filters, err = c.compilePerFilter(rc.GetTypedPerFilterConfig(), "typed_per_filter_config"); err != nil {
		return nil, err
	}
	t.request, err = compileMutation(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		"request_headers_to_add", "request_headers_to_remove")
	if err != nil {
		return nil, err
	}
	t.response, err = compileMutation(rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(),
		"response_headers_to_add", "response_headers_to_remove")
	if err != nil {
		return nil, err
	}
	d := newDomainIndex()
	for i, vhc := range rc.GetVirtualHosts() {
		path := index("virtual_hosts", i)
		vh, err := c.compileVirtualHost(vhc, path, t)
		if err != nil {
			return nil, err
		}
		t.vhosts = append(t.vhosts, vh)
		if err := d.add(vhc.GetDomains(), vh, field(path, "domains")); err != nil {
			return nil, err
		}
	}
	d.install(t)
	return t, nil
}

func (c *compiler) compileVirtualHost(vhc *routev3.VirtualHost, path string, t *Table) (*VirtualHost, error) {
	// require_tls NONE is the zero value and so never "populated".
	if err := checkFields(vhc, path, "name", "domains", "routes", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "metadata",
		"retry_policy", "include_request_attempt_count", "include_attempt_count_in_response",
		"per_request_buffer_limit_bytes", "typed_per_filter_config"); err != nil {
		return nil, err
	}
	vh := &VirtualHost{name: vhc.GetName(), table: t}
	if err := compileVirtualHostResilience(vh, vhc, path); err != nil {
		return nil, err
	}
	var err error
	if vh.filters, err = c.compilePerFilter(vhc.GetTypedPerFilterConfig(), field(path, "typed_per_filter_config")); err != nil {
		return nil, err
	}
	vh.request, err = compileMutation(vhc.GetRequestHeadersToAdd(), vhc.GetRequestHeadersToRemove(),
		field(path, "request_headers_to_add"), field(path, "request_headers_to_remove"))
	if err != nil {
		return nil, err
	}
	vh.response, err = compileMutation(vhc.GetResponseHeadersToAdd(), vhc.GetResponseHeadersToRemove(),
		field(path, "response_headers_to_add"), field(path, "response_headers_to_remove"))
	if err != nil {
		return nil, err
	}
	for i, rtc := range vhc.GetRoutes() {
		r, err := c.compileRoute(rtc, index(field(path, "routes"), i), vh)
		if err != nil {
			return nil, err
		}
		vh.routes = append(vh.routes, r)
	}
	return vh, nil
}

func (c *compiler) compileRoute(rtc *routev3.Route, path string, vh *VirtualHost) (*Route, error) {
	if err := checkFields(rtc, path, "name", "match", "route", "redirect", "direct_response",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove", "metadata", "per_request_buffer_limit_bytes",
		"typed_per_filter_config"); err != nil {
		return nil, err
	}
	r := &Route{name: rtc.GetName(), vhost: vh}
	own, err := c.compilePerFilter(rtc.GetTypedPerFilterConfig(), field(path, "typed_per_filter_config"))
	if err != nil {
		return nil, err
	}
	r.filters = mergePerFilter(vh.table.filters, vh.filters, own)
	if r.match, err = compileRouteMatch(rtc.GetMatch(), field(path, "match")); err != nil {
		return nil, err
	}
	r.request, err = compileMutation(rtc.GetRequestHeadersToAdd(), rtc.GetRequestHeadersToRemove(),
		field(path, "request_headers_to_add"), field(path, "request_headers_to_remove"))
	if err != nil {
		return nil, err
	}
	r.response, err = compileMutation(rtc.GetResponseHeadersToAdd(), rtc.GetResponseHeadersToRemove(),
		field(path, "response_headers_to_add"), field(path, "response_headers_to_remove"))
	if err != nil {
		return nil, err
	}
	switch a := rtc.GetAction().(type) {
	case *routev3.Route_Route:
		r.kind = ActionRoute
		err = c.compileRouteAction(r, a.Route, field(path, "route"))
	case *routev3.Route_Redirect:
		r.kind = ActionRedirect
		r.redirect, r.status, err = compileRedirect(a.Redirect, field(path, "redirect"))
	case *routev3.Route_DirectResponse:
		r.kind = ActionDirectResponse
		err = c.compileDirectResponse(r, a.DirectResponse, field(path, "direct_response"))
	default:
		err = errAt(path, "one of route, redirect or direct_response is required")
	}
	if err != nil {
		return nil, err
	}
	if err := c.compileRouteResilience(r, rtc, path); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *compiler) compileDirectResponse(r *Route, dr *routev3.DirectResponseAction, path string) error {
	if err := checkFields(dr, path, "status", "body"); err != nil {
		return err
	}
	r.status = int(dr.GetStatus())
	if r.status < 200 || r.status > 599 {
		return errAt(field(path, "status"), "status must be in [200, 599], got %d", r.status)
	}
	body, err := c.dataSource(dr.GetBody(), field(path, "body"))
	if err != nil {
		return err
	}
	r.body = body
	return nil
}

// dataSource reads a direct-response body at compile time, enforcing
// max_direct_response_body_size_bytes as Envoy does for every kind of source.
func (c *compiler) dataSource(ds *corev3.DataSource, path string) ([]byte, error) {
	if ds == nil {
		return nil, nil
	}
	if err := checkFields(ds, path, "filename", "inline_bytes", "inline_string"); err != nil {
		return nil, err
	}
	var body []byte
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		body = []byte(s.InlineString)
	case *corev3.DataSource_InlineBytes:
		body = append([]byte(nil), s.InlineBytes...)
	case *corev3.DataSource_Filename:
		read := c.opts.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		b, err := read(s.Filename)
		if err != nil {
			return nil, errAt(field(path, "filename"), "cannot read response body file: %v", err)
		}
		body = b
	}
	if uint64(len(body)) > uint64(c.maxBody) {
		return nil, errAt(path, "response body size is %d bytes; maximum is %d (max_direct_response_body_size_bytes)",
			len(body), c.maxBody)
	}
	return body, nil
}

func (c *compiler) checkCluster(name, path string) error {
	if c.validateClusters && c.opts.ClusterExists != nil && !c.opts.ClusterExists(name) {
		return errAt(path, "unknown cluster %q", name)
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// domainIndex collects the domains of all virtual hosts as Envoy's
// RouteMatcher does: lower-cased, "*" once, "*suffix" and "prefix*"
// wildcards keyed by length, everything else exact; a domain may appear only
// once in the whole configuration.
type domainIndex struct {
	exact    map[string]*VirtualHost
	suffixes map[int]map[string]*VirtualHost
	prefixes map[int]map[string]*VirtualHost
	def      *VirtualHost
}

func newDomainIndex() *domainIndex {
	return &domainIndex{
		exact:    map[string]*VirtualHost{},
		suffixes: map[int]map[string]*VirtualHost{},
		prefixes: map[int]map[string]*VirtualHost{},
	}
}

func (d *domainIndex) add(domains []string, vh *VirtualHost, path string) error {
	if len(domains) == 0 {
		return errAt(path, "at least one domain is required")
	}
	for i, dom := range domains {
		p := index(path, i)
		dom = strings.ToLower(dom)
		var dup bool
		switch {
		case dom == "":
			return errAt(p, "domain must not be empty")
		case dom == "*":
			if d.def != nil {
				return errAt(p, "only a single wildcard domain \"*\" is permitted in the route configuration")
			}
			d.def = vh
		case dom[0] == '*':
			dup = put(d.suffixes, dom[1:], vh)
		case dom[len(dom)-1] == '*':
			dup = put(d.prefixes, dom[:len(dom)-1], vh)
		default:
			_, dup = d.exact[dom]
			if !dup {
				d.exact[dom] = vh
			}
		}
		if dup {
			return errAt(p, "duplicate domain %q: a domain may appear only once across all virtual hosts", dom)
		}
	}
	return nil
}

func put(levels map[int]map[string]*VirtualHost, key string, vh *VirtualHost) bool {
	m := levels[len(key)]
	if m == nil {
		m = map[string]*VirtualHost{}
		levels[len(key)] = m
	}
	if _, ok := m[key]; ok {
		return true
	}
	m[key] = vh
	return false
}

func (d *domainIndex) install(t *Table) {
	t.defaultVHost = d.def
	if len(d.exact) > 0 {
		t.exact = d.exact
	}
	t.suffixes = levels(d.suffixes)
	t.prefixes = levels(d.prefixes)
}

// levels orders wildcard levels longest first, so the longest wildcard wins.
func levels(m map[int]map[string]*VirtualHost) []wildcardLevel {
	if len(m) == 0 {
		return nil
	}
	out := make([]wildcardLevel, 0, len(m))
	for n, hosts := range m {
		out = append(out, wildcardLevel{n: n, hosts: hosts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	return out
}
