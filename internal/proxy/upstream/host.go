package upstream

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/upstream/outlier"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// Health is a host's health as EDS reports it (envoy.config.core.v3.HealthStatus).
type Health uint32

// Health values. Unknown and Healthy count as healthy; Degraded hosts are
// used only when no healthy host remains (as Envoy does); the rest are
// unhealthy.
const (
	HealthUnknown Health = iota
	HealthHealthy
	HealthUnhealthy
	HealthDraining
	HealthTimeout
	HealthDegraded
)

func (h Health) healthy() bool { return h == HealthUnknown || h == HealthHealthy }

// String returns Envoy's /clusters health_flags rendering.
func (h Health) String() string {
	switch h {
	case HealthUnhealthy, HealthTimeout:
		return "/eds_health_check_failed"
	case HealthDraining:
		return "/pending_dynamic_removal"
	case HealthDegraded:
		return "/degraded_eds_health"
	}
	return "healthy"
}

// Locality is where a host runs.
type Locality struct {
	Region, Zone, SubZone string
}

// HostStats are a host's own counters, shown by the admin's /clusters.
type HostStats struct {
	CxActive      stats.Gauge
	CxTotal       stats.Counter
	CxConnectFail stats.Counter
	RqActive      stats.Gauge
	RqTotal       stats.Counter
	RqError       stats.Counter
	RqSuccess     stats.Counter
	RqTimeout     stats.Counter
}

// Host is one upstream endpoint of a cluster. Its identity (address for
// static, STRICT_DNS and EDS hosts) does not change; a LOGICAL_DNS host's
// address does, and new connections follow it. An EDS update that changes
// only an endpoint's weight, priority, locality, hostname or health updates
// the Host in place (as Envoy's updateDynamicHostList does), so its
// connection pools and active requests are kept.
type Host struct {
	cluster *Cluster
	addr    atomic.Pointer[string] // "ip:port"
	meta    atomic.Pointer[hostMeta]
	health  atomic.Uint32
	// outlier is the host's outlier monitor (nil without
	// outlier_detection); hcFailed is Envoy's FAILED_ACTIVE_HC, written by
	// the host's health-check session (see health.go).
	outlier  *outlier.Monitor
	hcFailed atomic.Bool

	Stats HostStats
	// tls is the host's transport socket (nil: plaintext), chosen from its
	// endpoint metadata when the host was made.
	tls   *tlsctx.Client
	popts pool.Options
	h1    *pool.H1
	h2    *pool.H2
}

// hostMeta is what an endpoint says about its host besides its address.
// It is immutable; an EDS update stores a new one.
type hostMeta struct {
	hostname string // DNS name or the endpoint's hostname field
	weight   uint32
	priority uint32
	locality Locality
	// metadata is the endpoint's metadata (nil when none).
	metadata *corev3.Metadata
}

// equal reports whether m and o say the same about their host.
func (m *hostMeta) equal(o *hostMeta) bool {
	return m.hostname == o.hostname && m.weight == o.weight && m.priority == o.priority &&
		m.locality == o.locality && (m.metadata == o.metadata || proto.Equal(m.metadata, o.metadata))
}

// Metadata returns the endpoint's metadata (EDS lb_endpoints[].metadata),
// nil when it has none. It must not be modified.
func (h *Host) Metadata() *corev3.Metadata { return h.meta.Load().metadata }

// Address returns the host's current "ip:port".
func (h *Host) Address() string { return *h.addr.Load() }

// AddrPort returns Address parsed (zero if it does not parse).
func (h *Host) AddrPort() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(h.Address())
	return ap
}

// Hostname returns the DNS name the host came from (auto_host_rewrite uses
// it), or the endpoint's hostname field.
func (h *Host) Hostname() string { return h.meta.Load().hostname }

// Weight implements lb.Host.
func (h *Host) Weight() uint32 { return h.meta.Load().weight }

// ActiveRequests implements lb.Host.
func (h *Host) ActiveRequests() int64 { return h.Stats.RqActive.Value() }

// HashKey implements lb.Host: the address, as Envoy hashes by default.
func (h *Host) HashKey() string { return h.Address() }

// Priority returns the host's priority level.
func (h *Host) Priority() uint32 { return h.meta.Load().priority }

// Locality returns where the host runs.
func (h *Host) Locality() Locality { return h.meta.Load().locality }

// Health returns the host's health.
func (h *Host) Health() Health { return Health(h.health.Load()) }

// Cluster returns the cluster the host belongs to.
func (h *Host) Cluster() *Cluster { return h.cluster }

// H1 returns the host's HTTP/1.1 connection pool.
func (h *Host) H1() *pool.H1 { return h.h1 }

// H2 returns the host's HTTP/2 connection pool.
func (h *Host) H2() *pool.H2 { return h.h2 }

// DialTCP opens a raw TCP connection to the host (TCP proxy), counted in
// the cluster's connection stats and max_connections. release must be
// called after the connection is closed.
func (h *Host) DialTCP(deadline time.Time) (net.Conn, func(), error) {
	return pool.DialTCP(&h.popts, deadline)
}

// Identity returns what the TLS handshake of a connection DialTCP
// returned proved about both ends (zero for plaintext).
func (h *Host) Identity(c net.Conn) pool.Identity { return h.popts.IdentityOf(c) }

// close closes the host's pools at once (the cluster manager is shutting
// down, after the server's drain).
func (h *Host) close() {
	h.h1.Close()
	h.h2.Close()
}

// drain retires the host's pools gracefully: requests in flight finish on
// their connections, which then close; a request that picked the host just
// before it was removed still gets a connection. Envoy drains the
// connection pools of removed hosts the same way (hosts removed by EDS or
// DNS, clusters removed or replaced by CDS).
func (h *Host) drain() {
	h.h1.Drain()
	h.h2.Drain()
}
