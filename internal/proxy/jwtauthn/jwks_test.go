package jwtauthn

import (
	"crypto/elliptic"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// jwksServer serves a JWKS that the test can replace or make fail.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    string
	fail    bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	js := &jwksServer{body: body}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		defer js.mu.Unlock()
		if js.fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, js.body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(body string, fail bool) {
	js.mu.Lock()
	js.body, js.fail = body, fail
	js.mu.Unlock()
}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func remoteConfig(uri string) string {
	return `{"providers": {"p": {"issuer": "https://issuer.example.com", "payloadInMetadata": "payload",
	  "remoteJwks": {"httpUri": {"uri": "` + uri + `", "cluster": "jwks", "timeout": "2s"}, "cacheDuration": "60s"}}},
	  "rules": [{"match": {"prefix": "/"}, "requires": {"providerName": "p"}}]}`
}

// request runs one request with token and returns the status code (200
// when the filter lets it through).
func request(f *Filter, token string) int {
	s, w := newStream("/", "authorization", "Bearer "+token)
	if f.DecodeHeaders(s) == httpfilter.Continue {
		return 200
	}
	return w.resp.Status
}

func TestRemoteJWKSRefreshAndFailure(t *testing.T) {
	k1 := newRSAKey(t, "k1", "RS256")
	k2 := newECKey(t, "k2", "ES256", elliptic.P256())
	srv := newJWKSServer(t, jwks(k1))
	var c clock
	c.ns.Store(fixedNow.UnixNano())
	f, st := newFilter(t, remoteConfig(srv.URL+"/jwks.json"), c.now)
	t1, t2 := k1.sign(t, claims(nil)), k2.sign(t, claims(nil))

	// First use fetches synchronously; the keys are then cached.
	if got := request(f, t1); got != 200 {
		t.Fatalf("k1 token: %d", got)
	}
	if got := request(f, t2); got != 401 {
		t.Fatalf("k2 token before rotation: %d, want 401", got)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within cache_duration, want 1", n)
	}

	// After cache_duration a request triggers a background refetch; the
	// rotated set then serves.
	srv.set(jwks(k2), false)
	c.advance(61 * time.Second)
	request(f, t1) // still verified with the cached keys while refreshing
	waitFor(t, "the refetch", func() bool { return request(f, t2) == 200 })
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}

	// A failing refetch keeps the old keys, and is retried after the
	// failed-refetch delay (not on every request).
	srv.set("", true)
	c.advance(61 * time.Second)
	request(f, t2)
	waitFor(t, "the failed refetch", func() bool {
		return st.Root().Scope("http.inbound").Scope("jwt_authn").Counter("jwks_fetch_failed").Value() == 1
	})
	for i := 0; i < 5; i++ {
		if got := request(f, t2); got != 200 {
			t.Fatalf("after a failed refetch: %d, want 200 with the old keys", got)
		}
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (no retry within the failed-refetch delay)", n)
	}
	c.advance(2 * time.Second)
	request(f, t2)
	waitFor(t, "the retry", func() bool { return srv.fetches.Load() == 4 })
}

func TestRemoteJWKSUnreachable(t *testing.T) {
	srv := newJWKSServer(t, "")
	srv.set("", true)
	k := newRSAKey(t, "k1", "RS256")
	f, _ := newFilter(t, remoteConfig(srv.URL), nil)
	s, w := newStream("/", "authorization", "Bearer "+k.sign(t, claims(nil)))
	if f.DecodeHeaders(s) != httpfilter.Stop || w.resp.Status != 401 || w.body.String() != "Jwks remote fetch is failed" {
		t.Errorf("got %d %q, want 401 Jwks remote fetch is failed", w.resp.Status, w.body.String())
	}
}
