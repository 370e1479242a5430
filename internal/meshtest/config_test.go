package meshtest

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// TestServiceYAMLLoads: what Service and VirtualServiceYAML write is valid
// Istio configuration that weft-control's loader accepts as written (every
// object, no problem reported), and a route to an unknown subset is
// rejected (the tests rely on both).
func TestServiceYAMLLoads(t *testing.T) {
	s := Service{Name: "hello", Port: 8080, Protocol: "GRPC", Workloads: []Workload{
		{Name: "hello-v1", Address: "127.0.0.2", Port: 9001, Version: "v1", ServiceAccount: "hello", MTLS: true},
		{Name: "hello-v2", Address: "127.0.0.3", Port: 9002, Version: "v2"},
	}}
	vs := s.VirtualServiceYAML("hello",
		Route{Header: "x-fail", AbortStatus: 503, To: []Destination{{Subset: "v1"}}},
		Route{To: []Destination{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}}})
	tests := []struct {
		name         string
		yaml         string
		wantObjects  int
		wantRejected int
	}{
		{"service, workloads, subsets and routes", s.YAML() + "---\n" + vs, 5, 0},
		{"route to an unknown subset", s.YAML() + "---\n" + s.VirtualServiceYAML("broken", Route{To: []Destination{{Subset: "v3"}}}), 4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeOnly(t, map[string]string{"mesh.yaml": tt.yaml})
			res, err := config.LoadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Objects) != tt.wantObjects || len(res.Rejected) != tt.wantRejected {
				var msgs []string
				for _, e := range res.Errors {
					msgs = append(msgs, e.Path+": "+e.Message)
				}
				t.Fatalf("%d objects, %d rejected (%s); want %d and %d\n%s",
					len(res.Objects), len(res.Rejected), strings.Join(msgs, "; "), tt.wantObjects, tt.wantRejected, tt.yaml)
			}
			if tt.wantRejected == 0 && len(res.Errors) != 0 {
				t.Errorf("problems reported: %v", res.Errors[0].Message)
			}
		})
	}
}

// writeOnly writes files as RunConfigDir does, without a control plane.
func writeOnly(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		WriteConfig(t, dir, name, content)
	}
	return dir
}
