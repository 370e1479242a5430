// Package hcm is weft-proxy's HTTP connection manager
// (envoy.filters.network.http_connection_manager): it takes a downstream
// connection from the listener, picks the codec (HTTP/1.1 or HTTP/2, by
// configuration or by sniffing the HTTP/2 preface), turns each request into
// a Stream, applies Envoy's request header rules (x-forwarded-for,
// x-forwarded-proto, x-request-id, hop-by-hop headers), resolves the route
// and runs the HTTP filter chain, whose last filter (the router) forwards
// the request upstream.
//
// It also owns connection-level behaviour: idle and request timeouts,
// header limits, Envoy-style local replies for protocol errors, draining
// (HTTP/1 "connection: close", HTTP/2 GOAWAY) and the http.<stat_prefix>.*
// statistics.
package hcm

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tracing"
)

// Options are what a connection manager needs from the server.
type Options struct {
	Stats      *stats.Store
	Filters    *httpfilter.Registry
	FilterDeps httpfilter.Deps
	Drain      network.Draining
	// OnStreamDone, when set, is called with every completed stream (access
	// logs and tests observe streams through it). It must not keep s.
	OnStreamDone func(s *httpfilter.Stream)
	// AccessLogs builds the manager's access_log loggers (nil: access_log
	// must be empty).
	AccessLogs *accesslog.Manager
	// Tracing serves the configuration's tracing (Providers required
	// when tracing is set).
	Tracing tracing.Options
}

type codecType uint8

const (
	codecAuto codecType = iota
	codecHTTP1
	codecHTTP2
)

// serverHeader is server_header_transformation.
type serverHeader uint8

const (
	serverOverwrite serverHeader = iota
	serverAppendIfAbsent
	serverPassThrough
)

// Manager is one configured http_connection_manager. It implements
// network.Handler. It is immutable except for its route table, which is
// swapped atomically (RDS): each request routes with the table it loaded,
// so requests in flight keep the old table.
type Manager struct {
	o     Options
	codec codecType
	stats *connStats

	routes  atomic.Pointer[router.Table]
	filters []httpfilter.Filter
	// observers are the filters that record completed streams.
	observers []httpfilter.StreamObserver
	// chain holds each filter's name and HttpFilter.disabled, parallel to
	// filters (perroute.go).
	chain []chainEntry
	// rdsName is rds.route_config_name; "" with an inline route_config.
	rdsName         string
	rdsFetchTimeout time.Duration

	idleTimeout           time.Duration // connection with no stream
	streamIdleTimeout     time.Duration
	requestTimeout        time.Duration
	requestHeadersTimeout time.Duration
	drainTimeout          time.Duration
	maxConnDuration       time.Duration

	useRemoteAddress   bool
	localAddr          netip.Addr // appended to XFF for loopback peers
	xffTrustedHops     int
	skipXFFAppend      bool
	generateRequestID  bool
	preserveExternalID bool

	maxRequestHeadersBytes int
	maxHeaders             int
	serverName             string
	serverHeader           serverHeader
	upgrades               map[string]bool // lower-case upgrade type → enabled
	accessLogs             accesslog.Loggers
	acceptHTTP10           bool
	defaultHost10          string
	rejectUnderscores      bool
	dropUnderscores        bool

	h2cfg h2Settings
	xfcc  xfccConfig
	// suppressEnvoyHeaders is the router's setting, mirrored here for the
	// response path.
	suppressEnvoyHeaders bool

	// tracer is tracing's Tracer; nil without tracing (tracing.go).
	tracer *tracing.Tracer

	date  dateCache
	conns connSet
	h2    h2Server

	done      chan struct{}
	closeOnce sync.Once
}

type h2Settings struct {
	maxConcurrentStreams uint32
	streamWindow         uint32
	connWindow           uint32
}

// New builds a connection manager from its configuration. cfg must have
// passed bootstrap validation; errors name the field.
func New(cfg *hcmv3.HttpConnectionManager, o Options) (*Manager, error) {
	m := &Manager{
		o:                      o,
		idleTimeout:            time.Hour,
		streamIdleTimeout:      5 * time.Minute,
		drainTimeout:           5 * time.Second,
		useRemoteAddress:       cfg.GetUseRemoteAddress().GetValue(),
		xffTrustedHops:         int(cfg.GetXffNumTrustedHops()),
		skipXFFAppend:          cfg.GetSkipXffAppend(),
		generateRequestID:      true,
		preserveExternalID:     cfg.GetPreserveExternalRequestId(),
		maxRequestHeadersBytes: 60 << 10,
		maxHeaders:             100,
		serverName:             "weft",
		upgrades:               map[string]bool{},
		acceptHTTP10:           cfg.GetHttpProtocolOptions().GetAcceptHttp_10(),
		defaultHost10:          cfg.GetHttpProtocolOptions().GetDefaultHostForHttp_10(),
	}
	if m.useRemoteAddress {
		m.localAddr = localAddress()
	}
	switch cfg.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		m.codec = codecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		m.codec = codecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		m.codec = codecHTTP2
	default:
		return nil, fmt.Errorf("codec_type: %s is not supported (AUTO, HTTP1, HTTP2)", cfg.GetCodecType())
	}
	if cfg.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: required")
	}
	m.stats = newConnStats(o.Stats.Root(), cfg.GetStatPrefix())
	if v := cfg.GetGenerateRequestId(); v != nil {
		m.generateRequestID = v.GetValue()
	}
	if v := cfg.GetMaxRequestHeadersKb(); v != nil {
		m.maxRequestHeadersBytes = int(v.GetValue()) << 10
	}
	if s := cfg.GetServerName(); s != "" {
		m.serverName = s
	}
	switch cfg.GetServerHeaderTransformation() {
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		m.serverHeader = serverAppendIfAbsent
	case hcmv3.HttpConnectionManager_PASS_THROUGH:
		m.serverHeader = serverPassThrough
	}
	if err := m.timeouts(cfg); err != nil {
		return nil, err
	}
	x, err := compileXFCC(cfg)
	if err != nil {
		return nil, err
	}
	m.xfcc = x
	if p := cfg.GetHttp2ProtocolOptions(); p != nil {
		m.h2cfg = h2Settings{
			maxConcurrentStreams: p.GetMaxConcurrentStreams().GetValue(),
			streamWindow:         p.GetInitialStreamWindowSize().GetValue(),
			connWindow:           p.GetInitialConnectionWindowSize().GetValue(),
		}
	}
	for i, u := range cfg.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: required", i)
		}
		m.upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	if cfg.GetProxy_100Continue() {
		return nil, fmt.Errorf("proxy_100_continue: not supported by weft-proxy (it answers 100-continue itself, Envoy's default)")
	}
	if err := m.buildTracer(cfg); err != nil {
		return nil, err
	}
	if err := m.buildFilters(cfg); err != nil {
		return nil, err
	}
	if m.accessLogs, err = o.AccessLogs.Build(cfg.GetAccessLog(), "access_log"); err != nil {
		return nil, err
	}
	table, err := m.initialRoutes(cfg)
	if err != nil {
		return nil, err
	}
	m.routes.Store(table)
	m.done = make(chan struct{})
	go m.drainLoop()
	return m, nil
}

// Close releases the manager's background work. Connections it serves are
// not affected.
func (m *Manager) Close() { m.closeOnce.Do(func() { close(m.done) }) }

func (m *Manager) timeouts(cfg *hcmv3.HttpConnectionManager) error {
	common := cfg.GetCommonHttpProtocolOptions()
	if d := common.GetIdleTimeout(); d != nil {
		m.idleTimeout = d.AsDuration() // 0 disables
	}
	if d := common.GetMaxConnectionDuration(); d != nil {
		m.maxConnDuration = d.AsDuration()
	}
	if v := common.GetMaxHeadersCount(); v != nil {
		m.maxHeaders = int(v.GetValue())
	}
	switch common.GetHeadersWithUnderscoresAction() {
	case 1: // REJECT_REQUEST
		m.rejectUnderscores = true
	case 2: // DROP_HEADER
		m.dropUnderscores = true
	}
	if common.GetMaxStreamDuration() != nil {
		return fmt.Errorf("common_http_protocol_options.max_stream_duration: not supported by weft-proxy yet")
	}
	if d := cfg.GetStreamIdleTimeout(); d != nil {
		m.streamIdleTimeout = d.AsDuration()
	}
	if d := cfg.GetRequestTimeout(); d != nil {
		m.requestTimeout = d.AsDuration()
	}
	if d := cfg.GetRequestHeadersTimeout(); d != nil {
		m.requestHeadersTimeout = d.AsDuration()
	}
	if d := cfg.GetDrainTimeout(); d != nil {
		m.drainTimeout = d.AsDuration()
	}
	return nil
}

func (m *Manager) buildFilters(cfg *hcmv3.HttpConnectionManager) error {
	n := len(cfg.GetHttpFilters())
	if n == 0 {
		return fmt.Errorf("http_filters: empty; the last filter must be envoy.filters.http.router")
	}
	for i, hf := range cfg.GetHttpFilters() {
		path := fmt.Sprintf("http_filters[%d]", i)
		if hf.GetTypedConfig() == nil {
			return fmt.Errorf("%s (%s).typed_config: required", path, hf.GetName())
		}
		f, terminal, err := m.o.Filters.Build(hf.GetTypedConfig(), m.o.FilterDeps)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", path, hf.GetName(), err)
		}
		if terminal != (i == n-1) {
			if terminal {
				return fmt.Errorf("%s (%s): the router must be the last HTTP filter", path, hf.GetName())
			}
			return fmt.Errorf("%s (%s): the last HTTP filter must be envoy.filters.http.router", path, hf.GetName())
		}
		if s, ok := f.(interface{ SuppressEnvoyHeaders() bool }); ok && s.SuppressEnvoyHeaders() {
			m.suppressEnvoyHeaders = true
		}
		m.filters = append(m.filters, f)
		if o, ok := f.(httpfilter.StreamObserver); ok {
			m.observers = append(m.observers, o)
		}
		if terminal && hf.GetDisabled() {
			return fmt.Errorf("%s (%s).disabled: the router cannot be disabled", path, hf.GetName())
		}
		m.chain = append(m.chain, chainEntry{name: hf.GetName(), disabled: hf.GetDisabled()})
	}
	return nil
}

// initialRoutes compiles the inline route_config, or, with rds, returns
// the empty table the manager routes with until its first RDS response:
// every request gets 404 NR meanwhile (the server keeps such a listener
// warming until then, as Envoy does, unless the fetch timed out).
func (m *Manager) initialRoutes(cfg *hcmv3.HttpConnectionManager) (*router.Table, error) {
	if rds := cfg.GetRds(); rds != nil {
		if rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("rds.route_config_name: required")
		}
		if rds.GetConfigSource().GetAds() == nil {
			return nil, fmt.Errorf("rds.config_source: set ads {} (weft-proxy receives route configurations over the ADS stream only)")
		}
		m.rdsName = rds.GetRouteConfigName()
		m.rdsFetchTimeout = 15 * time.Second // Envoy's initial_fetch_timeout default
		if d := rds.GetConfigSource().GetInitialFetchTimeout(); d != nil {
			m.rdsFetchTimeout = d.AsDuration()
		}
		return router.Compile(&routev3.RouteConfiguration{}, m.RouteCompileOptions())
	}
	rc := cfg.GetRouteConfig()
	if rc == nil {
		return nil, fmt.Errorf("route_config: set an inline route_config or rds")
	}
	table, err := router.Compile(rc, m.RouteCompileOptions())
	if err != nil {
		return nil, fmt.Errorf("route_config: %w", err)
	}
	return table, nil
}

// RDSName returns the name of the route configuration the manager takes
// from RDS, or "" when its route_config is inline.
func (m *Manager) RDSName() string { return m.rdsName }

// RDSInitialFetchTimeout is rds.config_source.initial_fetch_timeout: how
// long a listener waits (warming) for this manager's first route
// configuration; 0 means for ever. Envoy's default is 15 s.
func (m *Manager) RDSInitialFetchTimeout() time.Duration { return m.rdsFetchTimeout }

// RouteCompileOptions returns the options a route configuration for this
// manager must be compiled with: the router's suppress_envoy_headers also
// drops x-envoy-original-path on rewrites (Envoy's
// finalizeRequestHeaders), which the table does. validate_clusters
// defaults to false, as Envoy's does for RDS (an inline table's clusters
// are checked by bootstrap validation).
func (m *Manager) RouteCompileOptions() router.CompileOptions {
	return router.CompileOptions{SuppressEnvoyHeaders: m.suppressEnvoyHeaders, FilterConfigs: m.filterConfigParser()}
}

// SetRoutes replaces the route table (RDS). t must have been compiled with
// RouteCompileOptions. New requests route with t; requests in flight keep
// the table they started with.
func (m *Manager) SetRoutes(t *router.Table) { m.routes.Store(t) }

// Routes returns the route table in force.
func (m *Manager) Routes() *router.Table { return m.routes.Load() }
