package e2e

import (
	"io"
	"net/http"
	"testing"
)

// frontProxy is a bootstrap with one HTTP listener ("front", port 0) routing
// everything to the STATIC cluster "backend" at {{.upstream}}.
const frontProxy = adminHead + frontListener + frontHCM + allToBackend + `
  clusters:` + backendCluster + backendEndpoint

func TestProxyHTTP1AndHTTP2ToHTTP1Upstream(t *testing.T) {
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-upstream-proto", r.Proto)
		w.Header().Set("x-seen-path", r.URL.RequestURI())
		io.WriteString(w, "hello "+r.Host)
	}))
	host, port := HostPort(up)
	p := StartProxy(t, Render(t, frontProxy, map[string]any{"host": host, "port": port}))

	for _, c := range []struct {
		name   string
		client *http.Client
		proto  string
	}{{"http1", Client(), "HTTP/1.1"}, {"h2c", H2CClient(), "HTTP/2.0"}} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", p.URL("front")+"/a/b?x=1", nil)
			req.Host = "example.com"
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello example.com" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if resp.Proto != c.proto {
				t.Errorf("downstream protocol %s, want %s", resp.Proto, c.proto)
			}
			if got := resp.Header.Get("x-upstream-proto"); got != "HTTP/1.1" {
				t.Errorf("upstream saw %s, want HTTP/1.1 (cluster default)", got)
			}
			if got := resp.Header.Get("x-seen-path"); got != "/a/b?x=1" {
				t.Errorf("upstream path %q", got)
			}
			if resp.Header.Get("x-envoy-upstream-service-time") == "" {
				t.Error("x-envoy-upstream-service-time missing")
			}
		})
	}
	if n := p.Stat("cluster.backend.upstream_rq_200"); n != 2 {
		t.Errorf("cluster.backend.upstream_rq_200 = %d, want 2", n)
	}
}
