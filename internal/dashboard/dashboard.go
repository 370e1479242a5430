// Package dashboard is weft-control's live mesh page (`weft dashboard`):
// a service graph whose edges carry request rate, error rate and p99
// latency, and per service its endpoints, subsets, the VirtualServices and
// DestinationRule in force, configuration problems and the proxies' xDS
// sync state.
//
// Edge metrics are gathered by weft-control itself, without a Prometheus
// server: a collector goroutine scrapes every connected proxy's Istio
// metrics endpoint (:15090/stats/prometheus, Istio's names and labels:
// istio_requests_total, istio_request_duration_milliseconds) every
// interval, keeps a window of scrapes per proxy, and publishes rates and
// histogram quantiles computed from the increase between the window's
// first and last scrape, as Prometheus' rate() and histogram_quantile()
// would. The page is served from embedded assets (no network needed: plain
// JavaScript and SVG) and stays live through Server-Sent Events; it also
// polls the JSON endpoint when EventSource is unavailable.
//
// Routes under /dashboard/: the page and its assets, api/mesh (the View as
// JSON) and api/events (a View per collector round, as SSE).
package dashboard

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
)

// Paths the dashboard serves.
const (
	Path       = "/dashboard/"
	MeshPath   = Path + "api/mesh"
	EventsPath = Path + "api/events"
)

// DefaultClusterDomain resolves short host names in Istio objects.
const DefaultClusterDomain = "cluster.local"

// Source is the control plane state the dashboard shows. Every method must
// be safe for concurrent use; each is called once per view built (once per
// collector round per open page).
type Source interface {
	// Snapshot is the configuration pushed last; nil before the first.
	Snapshot() *model.Snapshot
	// Proxies are the connected proxies (one per node id). The dashboard
	// does not modify them.
	Proxies() []*model.Proxy
	// SyncStatus is the xDS state of the connected proxies by node id.
	SyncStatus() map[string]xds.ProxyStatus
	// Problems are the current configuration problems (rejected objects,
	// registry problems, fields not applied).
	Problems() []*config.Error
}

// Options configure a Dashboard.
type Options struct {
	// Source is required.
	Source Source
	Scrape ScrapeOptions
	// ClusterDomain resolves short hosts (default cluster.local).
	ClusterDomain string
	Logger        *slog.Logger
}

// Dashboard gathers the proxies' metrics and serves the page.
type Dashboard struct {
	o   Options
	col *collector
	// done is closed when Run returns: open event streams end then (an
	// http.Server's Shutdown waits for them otherwise).
	done chan struct{}
}

//go:embed assets
var assets embed.FS

// New returns a dashboard; Run starts its collector.
func New(o Options) (*Dashboard, error) {
	if o.Source == nil {
		return nil, errors.New("dashboard: Options.Source is required")
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Scrape = o.Scrape.withDefaults()
	return &Dashboard{o: o, col: newCollector(o.Scrape, o.Source.Proxies, o.Logger), done: make(chan struct{})}, nil
}

// Run scrapes the proxies every interval until ctx ends, then ends the
// open event streams. It returns nil when ctx ends. Call it once.
func (d *Dashboard) Run(ctx context.Context) error {
	defer close(d.done)
	d.col.run(ctx)
	return nil
}

// View builds the current view.
func (d *Dashboard) View() *View {
	return buildView(buildInput{
		snap:     d.o.Source.Snapshot(),
		proxies:  d.o.Source.Proxies(),
		sync:     d.o.Source.SyncStatus(),
		problems: d.o.Source.Problems(),
		traffic:  d.col.cur.Load(),
		window:   d.o.Scrape.Window,
		interval: d.o.Scrape.Interval,
		domain:   d.o.ClusterDomain,
	})
}

// Mount adds the page, its assets and its API under /dashboard/ to mux.
func (d *Dashboard) Mount(mux *http.ServeMux) {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	mux.Handle(Path, http.StripPrefix(Path, noCache(http.FileServerFS(static))))
	mux.HandleFunc(MeshPath, d.handleMesh)
	mux.HandleFunc(EventsPath, d.handleEvents)
}
