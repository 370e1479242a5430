// Package admin serves weft-proxy's admin API: the subset of Envoy's admin
// endpoints that probes, Prometheus and operators rely on (/ready,
// /server_info, /stats, /stats/prometheus, /clusters, /config_dump,
// /quitquitquit, /healthcheck/fail, /healthcheck/ok, / and /help), with
// Envoy's paths, query parameters, status codes, content types and body
// shapes.
//
// The admin knows nothing of the server: Options hands it the stats store
// and small functions that return Envoy's envoy.admin.v3 protos or act on
// the server. It serves on a listener the caller binds (bootstrap
// admin.address; keeping it on loopback is the caller's business).
//
// Behaviour follows Envoy's source/server/admin: paths match exactly
// (query string aside), endpoints that mutate state answer 405 "Method GET
// not allowed, POST required." to anything but POST, unknown paths answer
// 404 with the command list, and every response carries
// "Cache-Control: no-cache, max-age=0" and "X-Content-Type-Options:
// nosniff". A panic in a handler or an Options function answers 500 and
// never takes the process down.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// Options is what the admin needs from the server. Every field is optional:
// an endpoint whose source is nil is not served (it answers 404, as an
// unknown path). Functions are called on the request's goroutine, possibly
// concurrently, and must be safe for that; they must return quickly.
type Options struct {
	// Stats backs /stats and /stats/prometheus.
	Stats *stats.Store
	// ServerInfo backs /server_info. The admin overwrites the state with
	// State() when State is set, so both endpoints agree. Returning nil
	// prints an empty ServerInfo.
	ServerInfo func() *adminv3.ServerInfo
	// State backs /ready: 200 and "LIVE\n" when LIVE, else 503 and the
	// state's name. A server failing health checks on purpose reports
	// DRAINING, as Envoy does.
	State func() adminv3.ServerInfo_State
	// ConfigDump backs /config_dump. The caller fills Configs with Anys of
	// BootstrapConfigDump, ClustersConfigDump, ListenersConfigDump and
	// RoutesConfigDump, in that order (Envoy's). The admin never mutates
	// the returned message; every Any's type must be linked into the
	// binary (protoregistry.GlobalTypes).
	ConfigDump func() *adminv3.ConfigDump
	// Clusters backs /clusters. Statuses print in the order given.
	Clusters func() *adminv3.Clusters
	// Quit backs POST /quitquitquit. It is called at most once, on its own
	// goroutine, after "OK\n" has been flushed to the client; it starts
	// the server's graceful shutdown and may call Admin.Shutdown.
	Quit func()
	// HealthCheckFail and HealthCheckOK back POST /healthcheck/fail and
	// /healthcheck/ok; they are called before "OK\n" is written.
	HealthCheckFail func()
	HealthCheckOK   func()
	// Logger receives admin events (state-changing commands, recovered
	// panics, HTTP server errors). Nil discards them.
	Logger *slog.Logger
}

// Admin is the admin HTTP server. Create it with New; it is safe for
// concurrent use.
type Admin struct {
	opts      Options
	log       *slog.Logger
	endpoints map[string]*endpoint
	sorted    []*endpoint // by path, for / and /help
	srv       *http.Server
	quitOnce  sync.Once
}

// endpoint is one admin command.
type endpoint struct {
	path   string
	help   string
	post   bool // mutates server state: POST only
	params []param
	handle func(q url.Values) *response
}

// param documents one query parameter, for / and /help.
type param struct{ name, help string }

// response is what a handler produces; serve writes it in one place.
type response struct {
	code        int
	contentType string
	body        []byte
	after       func() // runs after the body has been flushed
}

// Content types, Envoy's Http::Headers::ContentTypeValues.
const (
	contentText = "text/plain; charset=UTF-8"
	contentJSON = "application/json"
	contentHTML = "text/html; charset=UTF-8"
)

func text(code int, body string) *response { return plain(code, []byte(body)) }

func plain(code int, body []byte) *response {
	return &response{code: code, contentType: contentText, body: body}
}

// New returns an admin serving the endpoints o has sources for.
func New(o Options) *Admin {
	a := &Admin{opts: o, log: o.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.register()
	a.srv = &http.Server{
		Handler: a,
		// The admin is for probes and operators: bound everything a slow
		// or hostile client can hold. 60 KiB of headers is Envoy's default
		// max_request_headers_kb.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    60 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	return a
}

// Serve accepts admin connections on l until Shutdown. It returns nil after
// Shutdown and the accept error otherwise. l is closed when Serve returns.
func (a *Admin) Serve(l net.Listener) error {
	err := a.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: serving on %s: %w", l.Addr(), err)
}

// Shutdown stops accepting, lets requests in flight finish and closes idle
// connections, until ctx ends (then it returns ctx's error). Calling it
// before or without Serve is fine.
func (a *Admin) Shutdown(ctx context.Context) error {
	return a.srv.Shutdown(ctx)
}

// ServeHTTP dispatches one admin request. It is the Handler of Serve's
// server, exposed for embedding and tests.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("admin handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p))
			// Handlers build the whole response before write, so nothing
			// has been sent yet.
			a.write(w, text(http.StatusInternalServerError, "internal error\n"))
		}
	}()
	a.write(w, a.dispatch(r))
}

// dispatch finds the endpoint and runs it. Paths match exactly, as
// Envoy's AdminImpl::makeRequest compares the path before '?'.
func (a *Admin) dispatch(r *http.Request) *response {
	ep, ok := a.endpoints[r.URL.Path]
	if !ok {
		// Envoy: "invalid path. " followed by the help text.
		return text(http.StatusNotFound, "invalid path. "+a.helpText())
	}
	if ep.post && r.Method != http.MethodPost {
		a.log.Warn("admin path mutates state, method is not POST", "path", ep.path, "method", r.Method)
		return text(http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed, POST required.")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return text(http.StatusBadRequest, "invalid query string: "+err.Error()+"\n")
	}
	if ep.post {
		a.log.Info("admin command", "path", ep.path, "remote", r.RemoteAddr)
	}
	return ep.handle(q)
}

// write sends resp with Envoy's fallback headers (utils.cc
// populateFallbackResponseHeaders).
func (a *Admin) write(w http.ResponseWriter, resp *response) {
	h := w.Header()
	h.Set("Content-Type", resp.contentType)
	h.Set("Cache-Control", "no-cache, max-age=0")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	if resp.code == http.StatusMethodNotAllowed {
		// RFC 9110 §15.5.6 requires Allow on a 405; Envoy omits it.
		h.Set("Allow", http.MethodPost)
	}
	w.WriteHeader(resp.code)
	_, _ = w.Write(resp.body)
	if resp.after != nil {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		resp.after()
	}
}

// register builds the endpoint table from the sources o provides. Help
// texts are Envoy's.
func (a *Admin) register() {
	o := &a.opts
	eps := []*endpoint{
		{path: "/", help: "Admin home page", handle: a.handleHome},
		{path: "/help", help: "print out list of admin commands", handle: a.handleHelp},
	}
	if o.Stats != nil {
		eps = append(eps,
			&endpoint{path: "/stats", help: "print server stats", params: statsParams, handle: a.handleStats},
			&endpoint{path: "/stats/prometheus", help: "print server stats in prometheus format", params: promParams, handle: a.handlePrometheus},
		)
	}
	if o.State != nil {
		eps = append(eps, &endpoint{path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", handle: a.handleReady})
	}
	if o.ServerInfo != nil {
		eps = append(eps, &endpoint{path: "/server_info", help: "print server version/status information", handle: a.handleServerInfo})
	}
	if o.Clusters != nil {
		eps = append(eps, &endpoint{path: "/clusters", help: "upstream cluster status", params: clustersParams, handle: a.handleClusters})
	}
	if o.ConfigDump != nil {
		eps = append(eps, &endpoint{path: "/config_dump", help: "dump current Envoy configs", params: configDumpParams, handle: a.handleConfigDump})
	}
	if o.Quit != nil {
		eps = append(eps, &endpoint{path: "/quitquitquit", help: "exit the server", post: true, handle: a.handleQuit})
	}
	if o.HealthCheckFail != nil {
		eps = append(eps, &endpoint{path: "/healthcheck/fail", help: "cause the server to fail health checks", post: true, handle: a.handleHealthCheck(o.HealthCheckFail)})
	}
	if o.HealthCheckOK != nil {
		eps = append(eps, &endpoint{path: "/healthcheck/ok", help: "cause the server to pass health checks", post: true, handle: a.handleHealthCheck(o.HealthCheckOK)})
	}
	a.endpoints = make(map[string]*endpoint, len(eps))
	for _, ep := range eps {
		a.endpoints[ep.path] = ep
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].path < eps[j].path })
	a.sorted = eps
}
