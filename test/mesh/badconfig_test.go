package mesh

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// configz fetches weft-control's /debug/configz.
func (c *controlPlane) configz() (snapshot string, problems []string) {
	c.t.Helper()
	resp, err := http.Get("http://" + c.cp.HTTPAddr().String() + "/debug/configz")
	if err != nil {
		c.t.Fatalf("/debug/configz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		SnapshotVersion string   `json:"snapshotVersion"`
		Problems        []string `json:"problems"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		c.t.Fatalf("/debug/configz: %v\n%s", err, b)
	}
	return out.SnapshotVersion, out.Problems
}

// TestInvalidEditKeepsLastGood: a VirtualService edited into an invalid
// one (a negative weight), and a YAML syntax error in another file, are
// reported with its file and field, and the proxies keep routing with the
// last good version; fixing the file applies the fix.
func TestInvalidEditKeepsLastGood(t *testing.T) {
	h := startHello(t, 100, 0)
	c := h.client.client()
	if got := count(t, c, h.routeURL, 20); got["v1"] != 20 {
		t.Fatalf("before: %v, want all on v1", got)
	}
	h.cp.write("hello-vs.yaml", helloRoutes(110, -10))
	h.cp.write("broken.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x, namespace: default\n")
	var problems []string
	waitFor(t, "both problems reported on /debug/configz", 2*time.Second, func() bool {
		_, problems = h.cp.configz()
		all := strings.Join(problems, "\n")
		return strings.Contains(all, "hello-vs.yaml") && strings.Contains(all, "broken.yaml")
	})
	all := strings.Join(problems, "\n")
	for _, want := range []string{"VirtualService default/hello", "weight -10 must not be negative", "broken.yaml"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not mention %q:\n%s", want, all)
		}
	}
	if got := count(t, c, h.routeURL, 50); got["v1"] != 50 {
		t.Fatalf("after the invalid edit: %v, want all 50 on v1 (the last good VirtualService)", got)
	}
	if d := h.client.admin("/config_dump?resource=dynamic_route_configs"); strings.Contains(d, "110") {
		t.Fatal("the invalid weights reached the sidecar")
	}
	h.cp.write("hello-vs.yaml", helloRoutes(50, 50))
	waitFor(t, "the fixed VirtualService in the client sidecar", 2*time.Second, func() bool {
		return weight50.MatchString(h.client.admin("/config_dump?resource=dynamic_route_configs"))
	})
}
