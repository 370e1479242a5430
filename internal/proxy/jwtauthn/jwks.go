package jwtauthn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// keySource gives a provider's current key set.
type keySource interface {
	// keys returns the keys to verify with, or JwksFetchFail when none
	// could be obtained. It may block for at most the fetch timeout.
	keys(ctx context.Context) (*keySet, Status)
}

// staticKeys are local_jwks.
type staticKeys struct{ ks *keySet }

func (s staticKeys) keys(context.Context) (*keySet, Status) { return s.ks, OK }

// Remote JWKS defaults, as Envoy's: keys are cached for 10 minutes
// (remote_jwks.cache_duration), and after a failed fetch the next attempt
// waits a second (async_fetch.failed_refetch_duration).
const (
	defaultCacheDuration = 10 * time.Minute
	failedRefetchDelay   = time.Second
	maxJWKSSize          = 1 << 20
)

// fetchedKeys is one successful fetch.
type fetchedKeys struct {
	ks *keySet
	at time.Time
}

// remoteKeys are remote_jwks: fetched on first use (the request waits,
// as Envoy's does without async_fetch), cached for cacheDuration, then
// refreshed in the background by the first request that sees them stale
// while the old keys keep serving; a failed refresh keeps the old keys
// and is retried after failedRefetchDelay. Lock-free on the request path
// once keys are cached.
type remoteKeys struct {
	uri           string
	timeout       time.Duration
	cacheDuration time.Duration
	client        *http.Client
	now           func() time.Time
	onFetch       func(ok bool)

	cur        atomic.Pointer[fetchedKeys]
	lastFail   atomic.Int64 // UnixNano of the last failed fetch; 0 none
	refreshing atomic.Bool
	initMu     sync.Mutex // serialises fetches while no keys are cached
}

// remoteOptions configure a remoteKeys.
type remoteOptions struct {
	uri, cluster  string
	timeout       time.Duration
	cacheDuration time.Duration
	dial          DialFunc
	now           func() time.Time
	success, fail *stats.Counter
}

func newRemoteKeys(o remoteOptions) *remoteKeys {
	if o.cacheDuration <= 0 {
		o.cacheDuration = defaultCacheDuration
	}
	tr := &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: o.timeout, Proxy: nil}
	if o.dial != nil {
		cluster, dial := o.cluster, o.dial
		tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, cluster, addr)
		}
	}
	r := &remoteKeys{
		uri: o.uri, timeout: o.timeout, cacheDuration: o.cacheDuration,
		client: &http.Client{Transport: tr, Timeout: o.timeout},
		now:    o.now,
	}
	r.onFetch = func(ok bool) {
		if ok {
			o.success.Inc()
		} else {
			o.fail.Inc()
		}
	}
	return r
}

func (r *remoteKeys) keys(ctx context.Context) (*keySet, Status) {
	now := r.now()
	if f := r.cur.Load(); f != nil {
		if now.Sub(f.at) >= r.cacheDuration && r.mayRetry(now) && r.refreshing.CompareAndSwap(false, true) {
			go r.refresh()
		}
		return f.ks, OK
	}
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if f := r.cur.Load(); f != nil {
		return f.ks, OK
	}
	if !r.mayRetry(now) {
		return nil, JwksFetchFail
	}
	if r.fetchAndStore(ctx) != nil {
		return nil, JwksFetchFail
	}
	return r.cur.Load().ks, OK
}

// mayRetry reports whether a fetch may start (none failed in the last
// failedRefetchDelay).
func (r *remoteKeys) mayRetry(now time.Time) bool {
	lf := r.lastFail.Load()
	return lf == 0 || now.Sub(time.Unix(0, lf)) >= failedRefetchDelay
}

// refresh runs one background refetch.
func (r *remoteKeys) refresh() {
	defer r.refreshing.Store(false)
	_ = r.fetchAndStore(context.Background())
}

// fetchAndStore fetches the JWKS and, when it parses, publishes it.
func (r *remoteKeys) fetchAndStore(ctx context.Context) error {
	ks, err := r.fetch(ctx)
	if err != nil {
		r.lastFail.Store(r.now().UnixNano())
		r.onFetch(false)
		return err
	}
	r.lastFail.Store(0)
	r.cur.Store(&fetchedKeys{ks: ks, at: r.now()})
	r.onFetch(true)
	return nil
}

func (r *remoteKeys) fetch(ctx context.Context) (*keySet, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.uri, nil)
	if err != nil {
		return nil, fmt.Errorf("remote_jwks.http_uri.uri: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch from %s: status %d", r.uri, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSSize {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	return parseJWKS(body)
}
