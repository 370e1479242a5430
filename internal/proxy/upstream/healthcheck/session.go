package healthcheck

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// Stats are Envoy's cluster.<name>.health_check.* statistics.
type Stats struct {
	Attempt        *stats.Counter
	Success        *stats.Counter
	Failure        *stats.Counter // every failed check, network failures included
	NetworkFailure *stats.Counter
	PassiveFailure *stats.Counter // always 0: no passive failure source is supported
	VerifyCluster  *stats.Counter // always 0: service_name_matcher is not supported
	Healthy        *stats.Gauge   // hosts passing active health checks
	Degraded       *stats.Gauge   // always 0: x-envoy-degraded is not supported
}

// NewStats returns the health_check stats under a cluster's scope.
func NewStats(cluster *stats.Scope) *Stats {
	sc := cluster.Scope("health_check")
	return &Stats{
		Attempt: sc.Counter("attempt"), Success: sc.Counter("success"), Failure: sc.Counter("failure"),
		NetworkFailure: sc.Counter("network_failure"), PassiveFailure: sc.Counter("passive_failure"),
		VerifyCluster: sc.Counter("verify_cluster"), Healthy: sc.Gauge("healthy"), Degraded: sc.Gauge("degraded"),
	}
}

// Target is the host a Session checks and how the Session reports to its
// cluster. Every function is called from the Session's goroutine.
type Target struct {
	// Pool describes how to reach the host: its address, dialer and
	// transport socket handshake. The Session replaces its breakers and
	// stats: health-check connections count in no circuit breaker and in
	// no upstream_cx_* stat (Envoy makes them outside the pools).
	Pool pool.Options
	// Failed reports the host's FAILED_ACTIVE_HC flag; SetFailed changes
	// it. Hosts start failed (Envoy marks hosts of a cluster with a health
	// checker FAILED_ACTIVE_HC until their first check passes).
	Failed    func() bool
	SetFailed func(failed bool)
	// Passed is called after every passing check (outlier detection's
	// successful_active_health_check_uneject_host). May be nil.
	Passed func()
	// Traffic reports whether the cluster has made a connection for
	// traffic (Envoy: upstream_cx_total used); until then the no-traffic
	// intervals apply.
	Traffic func() bool
	Stats   *Stats
}

// result is one check's outcome.
type result uint8

const (
	passed result = iota
	// failedActive: the host answered, wrongly (a status outside
	// expected_statuses, NOT_SERVING): unhealthy at once.
	failedActive
	// failedRetriable: a status in retriable_statuses: counts toward
	// unhealthy_threshold.
	failedRetriable
	// failedNetwork: connect failure, reset, timeout: counts toward
	// unhealthy_threshold.
	failedNetwork
)

// transition is Envoy's HealthTransition.
type transition uint8

const (
	unchanged transition = iota
	changed
	changePending
)

// prober runs one check.
type prober interface {
	probe(deadline time.Time) result
	close()
}

// Session checks one host until stopped.
type Session struct {
	cfg    *Config
	t      Target
	prober prober
	rand   func(n uint64) uint64

	first        bool
	numHealthy   uint32
	numUnhealthy uint32
	counted      bool // this host is counted in Stats.Healthy

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// NewSession returns a session for one host; Start runs it.
func NewSession(cfg *Config, t Target) *Session {
	po := t.Pool
	po.Breakers = breaker.New(breaker.Thresholds{MaxConnections: math.MaxInt32, MaxPendingRequests: math.MaxInt32,
		MaxRequests: math.MaxInt32, MaxRetries: math.MaxInt32}, stats.NewStore().Root())
	po.Stats = scratchStats()
	po.ConnectTimeout = cfg.Timeout
	po.MaxRequestsPerConnection = 0
	if !cfg.ReuseConnection {
		po.MaxRequestsPerConnection = 1
	}
	s := &Session{cfg: cfg, t: t, rand: rand.Uint64N, first: true, stop: make(chan struct{}), done: make(chan struct{})}
	switch cfg.Kind {
	case TCP:
		s.prober = &tcpProber{cfg: cfg, po: po}
	case GRPC:
		s.prober = newGRPCProber(cfg, po)
	default:
		s.prober = newHTTPProber(cfg, po)
	}
	return s
}

// scratchStats are pool stats nobody reads.
func scratchStats() *pool.Stats {
	sc := stats.NewStore().Root()
	return &pool.Stats{
		CxTotal: sc.Counter("a"), CxActive: sc.Gauge("b"), CxConnectFail: sc.Counter("c"), CxConnectTimeout: sc.Counter("d"),
		CxDestroy: sc.Counter("e"), CxHTTP1Total: sc.Counter("f"), CxHTTP2Total: sc.Counter("g"), CxOverflow: sc.Counter("h"),
		RqPendingTotal: sc.Counter("i"), RqPendingActive: sc.Gauge("j"), RqPendingOverflw: sc.Counter("k"),
		HostCxActive: sc.Gauge("l"), HostCxTotal: sc.Counter("m"), HostCxFail: sc.Counter("n"),
	}
}

// Start runs the session on its own goroutine: the first check after a
// random initial_jitter, the next ones after the interval Envoy picks.
func (s *Session) Start() { go s.run() }

// Stop ends the session (idempotent): a check in flight ends at its
// timeout at the latest, then the session's connections close and Done is
// closed. A host still counted as healthy leaves Stats.Healthy.
func (s *Session) Stop() { s.stopOnce.Do(func() { close(s.stop) }) }

// Done is closed when the session's goroutine has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

func (s *Session) run() {
	defer close(s.done)
	defer s.prober.close()
	defer func() {
		if s.counted {
			s.t.Stats.Healthy.Dec()
		}
	}()
	timer := time.NewTimer(s.jitter(0, s.cfg.InitialJitter))
	defer timer.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-timer.C:
		}
		s.t.Stats.Attempt.Inc()
		r := s.prober.probe(time.Now().Add(s.cfg.Timeout))
		select {
		case <-s.stop:
			return // stopped during the check: its result may be the stop's
		default:
		}
		timer.Reset(s.handle(r))
	}
}

// handle applies a check's result and returns the time until the next
// check.
func (s *Session) handle(r result) time.Duration {
	if r == passed {
		return s.interval(true, s.onSuccess())
	}
	return s.interval(false, s.onFailure(r))
}

// onSuccess is Envoy's handleSuccess: a failed host becomes healthy on its
// very first check, or after healthy_threshold passing checks in a row.
func (s *Session) onSuccess() transition {
	s.numUnhealthy = 0
	tr := unchanged
	if s.t.Failed() {
		s.numHealthy++
		if s.first || s.numHealthy >= s.cfg.HealthyThreshold {
			s.t.SetFailed(false)
			s.count(true)
			tr = changed
		} else {
			tr = changePending
		}
	}
	s.t.Stats.Success.Inc()
	s.first = false
	if s.t.Passed != nil {
		s.t.Passed()
	}
	return tr
}

// onFailure is Envoy's setUnhealthy: a healthy host fails at once when it
// answered wrongly, or after unhealthy_threshold network or retriable
// failures in a row.
func (s *Session) onFailure(r result) transition {
	s.numHealthy = 0
	tr := unchanged
	if !s.t.Failed() {
		s.numUnhealthy++
		if r == failedActive || s.numUnhealthy >= s.cfg.UnhealthyThreshold {
			s.t.SetFailed(true)
			s.count(false)
			tr = changed
		} else {
			tr = changePending
		}
	}
	s.t.Stats.Failure.Inc()
	if r == failedNetwork {
		s.t.Stats.NetworkFailure.Inc()
	}
	s.first = false
	return tr
}

func (s *Session) count(healthy bool) {
	if healthy != s.counted {
		s.counted = healthy
		if healthy {
			s.t.Stats.Healthy.Inc()
		} else {
			s.t.Stats.Healthy.Dec()
		}
	}
}

// interval is Envoy's HealthCheckerImplBase::interval: before the cluster
// has traffic, no_traffic_healthy_interval after a pass that settled the
// host and no_traffic_interval otherwise; with traffic, after a failure
// unhealthy_edge_interval while the host's change is pending and
// unhealthy_interval otherwise, after a pass healthy_edge_interval while
// pending and interval otherwise. Jitter is added as Envoy's
// intervalWithJitter does.
func (s *Session) interval(pass bool, tr transition) time.Duration {
	c := s.cfg
	var base time.Duration
	switch {
	case !s.t.Traffic():
		base = c.NoTrafficInterval
		if pass && tr != changePending {
			base = c.NoTrafficHealthyInterval
		}
	case !pass && tr == changePending:
		base = c.UnhealthyEdgeInterval
	case !pass:
		base = c.UnhealthyInterval
	case tr == changePending:
		base = c.HealthyEdgeInterval
	default:
		base = c.Interval
	}
	return s.jitter(base, c.IntervalJitter)
}

// jitter adds interval_jitter_percent of base and up to jitter, in whole
// milliseconds, at least 1 ms (Envoy's intervalWithJitter; initial_jitter
// uses the same draw with base 0).
func (s *Session) jitter(base, jitter time.Duration) time.Duration {
	ms := uint64(base.Milliseconds())
	if mod := uint64(s.cfg.IntervalJitterPercent) * ms / 100; mod > 0 && base > 0 {
		ms += s.rand(mod)
	}
	if j := uint64(jitter.Milliseconds()); j > 0 {
		ms += s.rand(j)
	}
	return time.Duration(max(ms, 1)) * time.Millisecond
}
