package dashboard

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// MetaMetricsAddress is the node metadata key that overrides where a
// proxy's Prometheus endpoint is scraped ("host:port"), for proxies whose
// node IP does not reach it (several sidecars on one machine, tests).
const MetaMetricsAddress = "WEFT_METRICS_ADDRESS"

// Scrape defaults.
const (
	// DefaultMetricsPort is Istio's Envoy Prometheus port.
	DefaultMetricsPort = 15090
	// DefaultMetricsPath is the path Istio's sidecars serve it on.
	DefaultMetricsPath = "/stats/prometheus"
	DefaultInterval    = 5 * time.Second
	// DefaultWindow is the span rates are computed over (Kiali's graph
	// defaults to the last minute).
	DefaultWindow   = time.Minute
	DefaultParallel = 8
)

// ScrapeOptions configure how the dashboard gathers the proxies' metrics.
type ScrapeOptions struct {
	// Interval between two scrapes of every proxy (default 5 s).
	Interval time.Duration
	// Window is the span rates, error rates and p99 are computed over
	// (default 1 min); until a proxy has been scraped for that long the
	// span is what there is.
	Window time.Duration
	// Timeout bounds one scrape (default: Interval, at most 5 s).
	Timeout time.Duration
	// Port is the proxies' metrics port (default 15090), used with the
	// proxy's IP unless its node metadata WEFT_METRICS_ADDRESS says
	// otherwise.
	Port int
	// Path is the metrics path (default /stats/prometheus).
	Path string
	// Parallel is how many proxies are scraped at once (default 8).
	Parallel int
	// Client makes the requests (default: a client without proxy
	// settings; proxies are reached directly).
	Client *http.Client
}

func (o ScrapeOptions) withDefaults() ScrapeOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Timeout <= 0 {
		o.Timeout = min(o.Interval, 5*time.Second)
	}
	if o.Port <= 0 {
		o.Port = DefaultMetricsPort
	}
	if o.Path == "" {
		o.Path = DefaultMetricsPath
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	return o
}

// target is one proxy to scrape.
type target struct {
	proxy string // node id
	addr  string // host:port
}

// TargetStatus is the state of one scrape target.
type TargetStatus struct {
	Proxy      string    `json:"proxy"`
	URL        string    `json:"url"`
	LastScrape time.Time `json:"last_scrape,omitzero"`
	// Error is the last scrape's failure ("" when it succeeded).
	Error string `json:"error,omitempty"`
	// Flows is how many Istio request flows the last scrape exposed.
	Flows int `json:"flows"`
}

// traffic is one published round of the collector: rates per flow summed
// over every proxy, and the targets' states. Immutable once published.
type traffic struct {
	round   uint64
	at      time.Time
	flows   map[flowKey]*flow
	targets []TargetStatus
}

// collector scrapes the proxies every interval. Its histories are owned by
// the Run goroutine; readers see the published traffic only.
type collector struct {
	o       ScrapeOptions
	proxies func() []*model.Proxy
	log     *slog.Logger

	hist    map[target]*history
	status  map[target]TargetStatus
	cur     atomic.Pointer[traffic]
	changed notifier
}

func newCollector(o ScrapeOptions, proxies func() []*model.Proxy, log *slog.Logger) *collector {
	c := &collector{o: o.withDefaults(), proxies: proxies, log: log, hist: map[target]*history{}, status: map[target]TargetStatus{}}
	c.cur.Store(&traffic{flows: map[flowKey]*flow{}})
	return c
}

// run scrapes at once, then every interval, until ctx ends.
func (c *collector) run(ctx context.Context) {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// targets lists the proxies to scrape: every connected proxy but the
// proxyless gRPC clients (they have no Envoy stats).
func (c *collector) targets() []target {
	var out []target
	for _, p := range c.proxies() {
		if p.Proxyless {
			continue
		}
		addr := metricsAddr(p.Metadata[MetaMetricsAddress], p.IP(), c.o.Port)
		if addr == "" {
			continue
		}
		out = append(out, target{proxy: p.ID, addr: addr})
	}
	return out
}

// metricsAddr is where a proxy's metrics are scraped: the node metadata's
// address (WEFT_METRICS_ADDRESS) when set, with the proxy's IP in place of
// an unspecified host (a listener on 0.0.0.0:15090, Istio's own address,
// is reached at the proxy's IP), else IP:port; "" when neither is known.
func metricsAddr(meta, ip string, port int) string {
	if meta == "" {
		if ip == "" {
			return ""
		}
		return net.JoinHostPort(ip, strconv.Itoa(port))
	}
	host, p, err := net.SplitHostPort(meta)
	if err != nil || ip == "" {
		return meta
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		return net.JoinHostPort(ip, p)
	}
	return meta
}

// round scrapes every target once and publishes the new rates.
func (c *collector) round(ctx context.Context) {
	targets := c.targets()
	results := make([]sample, len(targets))
	errs := make([]error, len(targets))
	ats := make([]time.Time, len(targets))
	sem := make(chan struct{}, c.o.Parallel)
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
			defer cancel()
			// The scrape's start is its timestamp, as Prometheus stamps
			// samples (the endpoint renders its values just after),
			// unless the exposition carries its own.
			start := time.Now()
			var at time.Time
			results[i], at, errs[i] = scrape(sctx, c.o.Client, c.url(tg))
			ats[i] = start
			if !at.IsZero() {
				ats[i] = at
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	seen := make(map[target]bool, len(targets))
	for i, tg := range targets {
		seen[tg] = true
		st := TargetStatus{Proxy: tg.proxy, URL: c.url(tg), LastScrape: ats[i]}
		if errs[i] != nil {
			st.Error = errs[i].Error()
			if c.status[tg].Error != st.Error {
				c.log.Debug("dashboard: scraping a proxy failed", "proxy", tg.proxy, "err", errs[i])
			}
		} else {
			st.Flows = len(results[i])
			h := c.hist[tg]
			if h == nil {
				h = &history{}
				c.hist[tg] = h
			}
			h.add(point{at: ats[i], s: results[i]}, c.o.Window)
		}
		c.status[tg] = st
	}
	for tg := range c.hist {
		if !seen[tg] {
			delete(c.hist, tg)
		}
	}
	for tg := range c.status {
		if !seen[tg] {
			delete(c.status, tg)
		}
	}
	c.publish()
}

func (c *collector) url(tg target) string { return "http://" + tg.addr + c.o.Path }

// publish sums the targets' rates and swaps them in.
func (c *collector) publish() {
	flows := map[flowKey]*flow{}
	for _, h := range c.hist {
		for k, f := range h.rates() {
			if flows[k] == nil {
				flows[k] = &flow{}
			}
			flows[k].add(f)
		}
	}
	ts := make([]TargetStatus, 0, len(c.status))
	for _, st := range c.status {
		ts = append(ts, st)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Proxy < ts[j].Proxy })
	prev := c.cur.Load()
	c.cur.Store(&traffic{round: prev.round + 1, at: time.Now(), flows: flows, targets: ts})
	c.changed.notify()
}

// notifier wakes every waiter when something changed.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
	}
	n.ch = make(chan struct{})
}
