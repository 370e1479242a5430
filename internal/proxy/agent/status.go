package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// StatusPort is Istio's agent status port, where rewritten app probes
// and /healthz/ready are served.
const StatusPort = 15020

// StatusOptions configure the agent's status server (Istio's pilot-agent
// status server on port 15020, pilot/cmd/pilot-agent/status/server.go).
type StatusOptions struct {
	// Address is where the server listens, ip:port (port 0: any).
	Address string
	// PodIP is where app probes without a host go: the kubelet probes
	// the pod IP, and so does Istio's agent unless
	// REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION is set.
	PodIP netip.Addr
	// LocalhostDestination sends app probes without a host to localhost
	// instead (Istio's REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION=true),
	// for apps listening on 127.0.0.1 only.
	LocalhostDestination bool
	// Probers are the app probes to serve (ParseAppProbers); the map and
	// its probes must not change once passed.
	Probers AppProbers
	// AdminAddress is the proxy admin's ip:port: /healthz/ready answers
	// 200 when its /ready does (configured, not draining), 503 otherwise,
	// as --health-address's listener. Empty: /healthz/ready is 404.
	AdminAddress string
	Logger       *slog.Logger
}

// Status is the running status server.
type Status struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	stop sync.Once
}

// StartStatus binds o.Address and serves, until Stop:
//
//   - /app-health/CONTAINER/livez|readyz|startupz (and Istio's
//     /app-lifecycle/... paths) by running the matching probe of
//     o.Probers against the app, from inside the pod: 200 when it passes,
//     the app's status (any 3xx as 200, as Istio) or 500 when it fails;
//     404 for a path with no probe (Istio answers 400; the kubelet counts
//     either as a failure);
//   - /healthz/ready from the admin's /ready;
//   - 404 for anything else.
//
// Bind errors are returned.
func StartStatus(o StatusOptions) (*Status, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.PodIP.IsValid() && !o.LocalhostDestination {
		return nil, errors.New("agent status: StatusOptions.PodIP is required (the pod IP app probes go to)")
	}
	ln, err := net.Listen("tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("agent status server: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	mux := http.NewServeMux()
	pr := newProber(o, port)
	mux.Handle("/app-health/", pr)
	mux.Handle("/app-lifecycle/", pr)
	if o.AdminAddress != "" {
		mux.Handle("/healthz/ready", newReadyHandler(o.AdminAddress, o.Logger))
	}
	s := &Status{
		ln:   ln,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("status server stopped", "err", err)
		}
	}()
	o.Logger.Info("status server listening", "address", ln.Addr().String(), "app_probes", len(o.Probers))
	return s, nil
}

// Addr is the address the server listens on.
func (s *Status) Addr() net.Addr { return s.ln.Addr() }

// Stop closes the listener and the connections, and waits for the
// server's goroutine. It is safe to call more than once.
func (s *Status) Stop() {
	s.stop.Do(func() { s.srv.Close() })
	<-s.done
}

// readyHandler is /healthz/ready: the admin's /ready, as the readiness
// listener on --health-address (Istio's 15021) serves it.
type readyHandler struct {
	url    string
	client *http.Client
	log    *slog.Logger
	ready  atomic.Bool // the last answer, to log changes only
}

func newReadyHandler(admin string, log *slog.Logger) *readyHandler {
	host, port, _ := net.SplitHostPort(admin)
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "127.0.0.1" // an admin on 0.0.0.0 is reached over loopback
		if ip.Is6() {
			host = "::1"
		}
	}
	return &readyHandler{
		url:    "http://" + net.JoinHostPort(host, port) + "/ready",
		client: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		log:    log,
	}
}

func (h *readyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	code := http.StatusServiceUnavailable
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = h.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				code = http.StatusOK
			}
		}
	}
	if was := h.ready.Swap(code == http.StatusOK); was != (code == http.StatusOK) {
		h.log.Info("proxy readiness changed", "ready", !was)
	}
	w.WriteHeader(code)
}

// statusPortHost replaces the status port in a Host header with port, as
// Istio's agent does for the Host of the request to the app.
func statusPortHost(host string, statusPort, port string) string {
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != statusPort {
		return host
	}
	return net.JoinHostPort(h, port)
}
