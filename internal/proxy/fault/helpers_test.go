package fault

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
)

func parseFault(t testing.TB, y string) *faultv3.HTTPFault {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var cfg faultv3.HTTPFault
	if err := protojson.Unmarshal(js, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return &cfg
}

func newFilter(t testing.TB, y string, o Options) *Filter {
	t.Helper()
	f, err := New(parseFault(t, y), o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
