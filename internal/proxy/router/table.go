package router

import (
	"bytes"
	"sync"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// HostPortStripping is the connection manager's port handling for the Host
// (:authority) header before routing.
type HostPortStripping uint8

const (
	// StripNoPort keeps the port: "example.com:8080" only matches domains
	// that carry that port ("example.com:8080", "example.com:*", "*").
	StripNoPort HostPortStripping = iota
	// StripMatchingPort is the HCM's strip_matching_host_port: the port is
	// removed only when it equals the local port of the downstream connection.
	StripMatchingPort
	// StripAnyPort is the HCM's strip_any_host_port: any numeric port is
	// removed.
	StripAnyPort
)

// CompileOptions are the settings from outside the RouteConfiguration that
// shape the table.
type CompileOptions struct {
	// HostPort is how NormalizeHost treats a port in the Host header
	// (HttpConnectionManager strip_matching_host_port / strip_any_host_port).
	HostPort HostPortStripping
	// StripTrailingHostDot is the HCM's strip_trailing_host_dot.
	StripTrailingHostDot bool
	// SuppressEnvoyHeaders is the router filter's suppress_envoy_headers: no
	// x-envoy-original-path on path rewrites.
	SuppressEnvoyHeaders bool
	// ValidateClustersDefault is validate_clusters when the configuration
	// does not set it: Envoy defaults it to true for a static (inline)
	// route_config and to false for RDS.
	ValidateClustersDefault bool
	// ClusterExists, when set and cluster validation is on, is asked about
	// every cluster the routes name; unknown clusters fail compilation.
	ClusterExists func(name string) bool
	// ReadFile reads direct_response body files; os.ReadFile when nil.
	ReadFile func(name string) ([]byte, error)
	// FilterConfigs parses typed_per_filter_config values (perfilter.go);
	// when nil they are kept unparsed.
	FilterConfigs FilterConfigParser
}

// wildcardLevel holds the wildcard domains of one length.
type wildcardLevel struct {
	n     int
	hosts map[string]*VirtualHost
}

// Table is a compiled RouteConfiguration. It is immutable and safe for
// concurrent use.
type Table struct {
	name             string
	vhosts           []*VirtualHost
	exact            map[string]*VirtualHost
	suffixes         []wildcardLevel // longest first
	prefixes         []wildcardLevel // longest first
	defaultVHost     *VirtualHost
	ignorePortInHost bool
	ignorePathParams bool
	mostSpecificWins bool

	request  mutation
	response mutation
	filters  perFilter // typed_per_filter_config

	hostPort             HostPortStripping
	stripTrailingHostDot bool
	suppressEnvoyHeaders bool

	bufs sync.Pool // *[]byte scratch for joining repeated headers
}

// Name is the RouteConfiguration's name.
func (t *Table) Name() string { return t.name }

// VirtualHosts lists the virtual hosts in configuration order. The slice
// must not be modified.
func (t *Table) VirtualHosts() []*VirtualHost { return t.vhosts }

func (t *Table) getBuf() *[]byte {
	if b, ok := t.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 256)
	return &b
}

func (t *Table) putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		t.bufs.Put(b)
	}
}

// Route finds the virtual host and the first matching route for req. route
// is nil when nothing matches (Envoy answers 404 with response flag NR);
// vhost is nil when no virtual host matches either. A request without a path
// (CONNECT) matches no route. Route does not allocate, except to join a
// repeated header for a header matcher the first times a pooled buffer is
// needed, and to lower-case a Host longer than 256 bytes.
func (t *Table) Route(req *headers.Request) (*Route, *VirtualHost) {
	vh := t.findVirtualHost(req)
	if vh == nil {
		return nil, nil
	}
	if req.Path == nil {
		return nil, vh
	}
	for _, r := range vh.routes {
		if r.match.matches(req, t) {
			return r, vh
		}
	}
	return nil, vh
}

// findVirtualHost is Envoy's RouteMatcher::findVirtualHost: with only a "*"
// virtual host it is used even without a Host; otherwise the lower-cased Host
// (without its port when ignore_port_in_host_matching is set) is looked up
// among exact domains, then suffix wildcards ("*.example.com",
// "*-bar.example.com"; longest first, the wildcard matching at least one
// character), then prefix wildcards ("example.*", longest first), then "*".
//
// The port is part of the Host that is matched: "example.com:8080" does not
// match the domain "example.com" but matches "example.com:8080",
// "example.com:*" or "*". Stripping it before routing is the connection
// manager's job (NormalizeHost) or ignore_port_in_host_matching's.
func (t *Table) findVirtualHost(req *headers.Request) *VirtualHost {
	if t.exact == nil && t.suffixes == nil && t.prefixes == nil {
		return t.defaultVHost
	}
	host := req.Authority
	if host == nil {
		return nil
	}
	if t.ignorePortInHost {
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
	}
	var stack [256]byte
	var lower []byte
	if len(host) <= len(stack) {
		lower = stack[:len(host)]
	} else {
		lower = make([]byte, len(host))
	}
	for i, c := range host {
		lower[i] = lowerASCII(c)
	}
	if vh, ok := t.exact[string(lower)]; ok {
		return vh
	}
	for _, lv := range t.suffixes {
		if lv.n < len(lower) {
			if vh, ok := lv.hosts[string(lower[len(lower)-lv.n:])]; ok {
				return vh
			}
		}
	}
	for _, lv := range t.prefixes {
		if lv.n < len(lower) {
			if vh, ok := lv.hosts[string(lower[:lv.n])]; ok {
				return vh
			}
		}
	}
	return t.defaultVHost
}

// portStart is Envoy's HeaderUtility::getPortStart: the index of the ':'
// before the port, or -1. An IPv6 literal has its port after "]".
func portStart(host []byte) int {
	i := bytes.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if j := bytes.LastIndexByte(host, ']'); j >= 0 && j > i {
		return -1
	}
	return i
}

// NormalizeHost applies the connection manager's Host normalization that the
// table was compiled with, before routing, in Envoy's order
// (ConnectionManagerUtility::maybeNormalizeHost):
//
//   - strip_trailing_host_dot: "example.com." becomes "example.com" and
//     "example.com.:443" becomes "example.com:443";
//   - strip_any_host_port / strip_matching_host_port
//     (HeaderUtility::stripPortFromHost): never for CONNECT; the port after
//     the last ':' (outside an IPv6 "[...]") must be a number; with
//     StripMatchingPort it must also equal localPort, the local port of the
//     downstream connection.
//
// The change is visible upstream, as in Envoy. It writes into the request's
// header arena only to drop a trailing dot before a port.
func (t *Table) NormalizeHost(req *headers.Request, localPort uint16) {
	if t.stripTrailingHostDot {
		stripTrailingHostDot(req)
	}
	switch t.hostPort {
	case StripAnyPort:
		stripHostPort(req, -1)
	case StripMatchingPort:
		stripHostPort(req, int(localPort))
	}
}

func stripTrailingHostDot(req *headers.Request) {
	h := req.Authority
	i := portStart(h)
	if i < 0 {
		if len(h) > 0 && h[len(h)-1] == '.' {
			req.Authority = h[:len(h)-1]
		}
		return
	}
	if i > 0 && h[i-1] == '.' {
		b := req.Alloc(len(h) - 1)
		copy(b, h[:i-1])
		copy(b[i-1:], h[i:])
		req.Authority = b
	}
}

func stripHostPort(req *headers.Request, want int) {
	if string(req.Method) == "CONNECT" {
		return
	}
	h := req.Authority
	i := portStart(h)
	if i < 0 {
		return
	}
	port, ok := parsePort(h[i+1:])
	if !ok || want >= 0 && port != want {
		return
	}
	req.Authority = h[:i]
}

// parsePort parses a decimal port as absl::SimpleAtoi into uint32 would
// (digits only here, at most 32 bits).
func parsePort(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 0xFFFFFFFF
}

// Compile compiles rc into a Table. Every field weft-proxy does not
// implement is an error naming its path; so are the errors Envoy reports at
// load time (duplicate domains, invalid regular expressions, protected
// headers, unknown format variables, oversized direct-response bodies, ...).
// rc is not retained.
func Compile(rc *routev3.RouteConfiguration, opts CompileOptions) (*Table, error) {
	c := compiler{opts: opts}
	t, err := c.compileTable(rc)
	if err != nil {
		return nil, err
	}
	// The API's own constraints (protoc-gen-validate rules), for what the
	// walk above does not check itself.
	if err := rc.ValidateAll(); err != nil {
		return nil, &ConfigError{Err: err}
	}
	return t, nil
}
