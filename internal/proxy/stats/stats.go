// Package stats is weft-proxy's Envoy-style statistics store: counters,
// gauges and histograms with Envoy's dotted names ("cluster.backend.
// upstream_rq_total") and, for Prometheus, Envoy's tag-extracted names
// ("envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"}").
//
// Why not prometheus/client_golang here: Envoy users read the same numbers in
// two shapes (/stats text with dotted names and /stats/prometheus), and
// Envoy's names carry their tags inside the dotted name. Keeping each stat
// once, with both names fixed when it is created, serves both renderings
// from one atomic value.
//
// Stats are created while configuration is built, never on the request path;
// recording is one atomic add. Creating a stat that exists returns the
// existing one, so a configuration update keeps its counters.
package stats

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is a stat's type.
type Kind uint8

// Kinds of stats.
const (
	KindCounter Kind = iota
	KindGauge
	KindHistogram
)

// Tag is one Prometheus label extracted from a dotted name.
type Tag struct {
	Name  string // for example "envoy_cluster_name"
	Value string
}

// Metric is one stat with its two names.
type Metric struct {
	Kind Kind
	// Name is the dotted Envoy name, as /stats prints it.
	Name string
	// PromName is the Prometheus metric name without tags, "envoy_"
	// prefixed and sanitized.
	PromName string
	Tags     []Tag

	counter   *Counter
	gauge     *Gauge
	histogram *Histogram
	gaugeFunc func() int64
}

// Value returns a counter's or gauge's current value.
func (m *Metric) Value() int64 {
	switch {
	case m.counter != nil:
		return int64(m.counter.Value())
	case m.gauge != nil:
		return m.gauge.Value()
	case m.gaugeFunc != nil:
		return m.gaugeFunc()
	}
	return 0
}

// Histogram returns the histogram of a histogram metric, else nil.
func (m *Metric) Histogram() *Histogram { return m.histogram }

// Store holds every stat of a process. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	metrics map[string]*Metric
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{metrics: make(map[string]*Metric)} }

// Root returns the scope with no prefix.
func (s *Store) Root() *Scope { return &Scope{store: s} }

// Snapshot returns the metrics sorted by dotted name.
func (s *Store) Snapshot() []*Metric {
	s.mu.Lock()
	out := make([]*Metric, 0, len(s.metrics))
	for _, m := range s.metrics {
		out = append(out, m)
	}
	s.mu.Unlock()
	sortMetrics(out)
	return out
}

// Get returns the metric with dotted name name, or nil.
func (s *Store) Get(name string) *Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metrics[name]
}

// CounterValue returns the value of the counter or gauge named name, or 0.
// Tests and the admin use it.
func (s *Store) CounterValue(name string) int64 {
	if m := s.Get(name); m != nil {
		return m.Value()
	}
	return 0
}

// Scope is a name prefix with its tags. Scopes are cheap values; build them
// while configuring.
type Scope struct {
	store *Store
	name  string // dotted prefix, "" or ending without dot
	prom  string // prometheus prefix without "envoy_"
	tags  []Tag
}

// Scope returns a child scope: dotted name prefix.name, Prometheus name
// prefix_name. name may contain dots ("circuit_breakers.default").
func (sc *Scope) Scope(name string) *Scope {
	return &Scope{store: sc.store, name: join(sc.name, ".", name), prom: join(sc.prom, "_", name), tags: sc.tags}
}

// Tagged returns a child scope whose dotted name carries a tag value:
// Tagged("cluster", "envoy_cluster_name", "backend") is "cluster.backend" in
// /stats and "cluster" with label envoy_cluster_name="backend" in Prometheus.
func (sc *Scope) Tagged(name, tagName, tagValue string) *Scope {
	tags := make([]Tag, len(sc.tags), len(sc.tags)+1)
	copy(tags, sc.tags)
	tags = append(tags, Tag{Name: tagName, Value: tagValue})
	return &Scope{store: sc.store, name: join(join(sc.name, ".", name), ".", tagValue), prom: join(sc.prom, "_", name), tags: tags}
}

// Counter returns the counter name in this scope, creating it if needed.
func (sc *Scope) Counter(name string) *Counter {
	return sc.metric(KindCounter, name, name, nil).counter
}

// CounterTagged returns a counter whose dotted name is name but whose
// Prometheus name is promName with an extra label, as Envoy's tag
// extraction does for "upstream_rq_2xx" → upstream_rq_xx{envoy_response_code_class="2"}.
func (sc *Scope) CounterTagged(name, promName string, tag Tag) *Counter {
	return sc.metric(KindCounter, name, promName, &tag).counter
}

// Gauge returns the gauge name in this scope, creating it if needed.
func (sc *Scope) Gauge(name string) *Gauge {
	return sc.metric(KindGauge, name, name, nil).gauge
}

// GaugeFunc registers a gauge whose value is computed when read (uptime,
// memory). Registering a name again replaces the function.
func (sc *Scope) GaugeFunc(name string, f func() int64) {
	m := sc.metric(KindGauge, name, name, nil)
	sc.store.mu.Lock()
	m.gauge, m.gaugeFunc = nil, f
	sc.store.mu.Unlock()
}

// Histogram returns the histogram name in this scope (values in
// milliseconds, Envoy's default buckets), creating it if needed.
func (sc *Scope) Histogram(name string) *Histogram {
	return sc.metric(KindHistogram, name, name, nil).histogram
}

func (sc *Scope) metric(kind Kind, name, promName string, extra *Tag) *Metric {
	full := join(sc.name, ".", name)
	s := sc.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.metrics[full]; ok {
		return m
	}
	tags := sc.tags
	if extra != nil {
		tags = append(append([]Tag(nil), sc.tags...), *extra)
	}
	m := &Metric{Kind: kind, Name: full, PromName: sanitize("envoy_" + join(sc.prom, "_", promName)), Tags: tags}
	switch kind {
	case KindCounter:
		m.counter = new(Counter)
	case KindGauge:
		m.gauge = new(Gauge)
	case KindHistogram:
		m.histogram = newHistogram()
	}
	s.metrics[full] = m
	return m
}

func join(a, sep, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + sep + b
}

// sanitize makes a Prometheus metric name: anything not [a-zA-Z0-9_:]
// becomes '_', as Envoy does.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == ':' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, s)
}

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Inc adds one.
func (g *Gauge) Inc() { g.v.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.v.Add(-1) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Value returns the value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// CustomCounter returns a counter of a custom stat namespace, creating it
// if needed. As Envoy renders the stats of a namespace registered with
// customStatNamespaces (Istio's "istiocustom"), its dotted name is
// namespace.name followed by each tag's name and value, and its Prometheus
// name is name as given, without the "envoy_" prefix, with tags as labels
// in their order. tags must not be modified afterwards. Creation takes the
// store's lock: do it off the request path, or once per new label set.
func (s *Store) CustomCounter(namespace, name string, tags []Tag) *Counter {
	return s.custom(KindCounter, namespace, name, tags).counter
}

// CustomHistogram is CustomCounter for a histogram (Envoy's default
// buckets).
func (s *Store) CustomHistogram(namespace, name string, tags []Tag) *Histogram {
	return s.custom(KindHistogram, namespace, name, tags).histogram
}

func (s *Store) custom(kind Kind, namespace, name string, tags []Tag) *Metric {
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte('.')
	b.WriteString(name)
	for _, t := range tags {
		b.WriteByte('.')
		b.WriteString(t.Name)
		b.WriteByte('.')
		b.WriteString(t.Value)
	}
	full := b.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.metrics[full]; ok {
		return m
	}
	m := &Metric{Kind: kind, Name: full, PromName: sanitize(name), Tags: tags}
	switch kind {
	case KindCounter:
		m.counter = new(Counter)
	case KindHistogram:
		m.histogram = newHistogram()
	default:
		m.gauge = new(Gauge)
	}
	s.metrics[full] = m
	return m
}
