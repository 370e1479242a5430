package controlplane

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
)

// TestSetOverlay: default objects join the pushed snapshot (their service
// appears), replacing them pushes again, an object of the directory with
// the same key wins over a default, and an override wins over both.
func TestSetOverlay(t *testing.T) {
	dir := t.TempDir()
	cp := startPlain(t, dir)
	se := func(addr string) *config.Object {
		obj, errs := config.NewObject(config.Meta{Kind: config.ServiceEntry, APIVersion: "networking.istio.io/v1", Name: "hello", Namespace: "default"},
			&networking.ServiceEntry{
				Hosts: []string{"hello.default.svc.cluster.local"}, Location: networking.ServiceEntry_MESH_INTERNAL,
				Resolution: networking.ServiceEntry_STATIC,
				Ports:      []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}},
				Endpoints:  []*networking.WorkloadEntry{{Address: addr}},
			}, config.Source{File: "<generated>"})
		if obj == nil {
			t.Fatalf("NewObject: %v", errs)
		}
		return obj
	}
	endpoint := func() string {
		s := cp.Snapshot()
		if s == nil {
			return ""
		}
		for _, svc := range s.Services {
			if svc.Hostname == "hello.default.svc.cluster.local" && len(svc.Endpoints) == 1 {
				return svc.Endpoints[0].Address
			}
		}
		return ""
	}
	waitSnapshot := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for endpoint() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: endpoint %q, want %q", what, endpoint(), want)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
		}
	}
	cp.SetOverlay(Overlay{Defaults: []*config.Object{se("127.0.0.7")}})
	waitSnapshot("default service entry", "127.0.0.7")
	cp.SetOverlay(Overlay{Defaults: []*config.Object{se("127.0.0.8")}})
	waitSnapshot("replaced default service entry", "127.0.0.8")
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(serviceYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	waitSnapshot("the directory's service entry of the same key", "127.0.0.1")
	cp.SetOverlay(Overlay{Defaults: []*config.Object{se("127.0.0.8")}, Overrides: []*config.Object{se("127.0.0.9")}})
	waitSnapshot("override service entry", "127.0.0.9")
}
