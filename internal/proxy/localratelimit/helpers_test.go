package localratelimit

import (
	"testing"
	"time"

	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

func parseLRL(t testing.TB, y string) *lrlv3.LocalRateLimit {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var cfg lrlv3.LocalRateLimit
	if err := protojson.Unmarshal(js, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return &cfg
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
