package localmesh

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
)

// fakeAlloc hands out 127.0.0.10, .11, ... and ports 20000, 20001, ... in
// call order, remembering keys as Loopback does.
type fakeAlloc struct {
	ips   map[string]string
	ports map[string]int
}

func newFakeAlloc() *fakeAlloc { return &fakeAlloc{ips: map[string]string{}, ports: map[string]int{}} }

func (a *fakeAlloc) IP(key string) (string, error) {
	if ip, ok := a.ips[key]; ok {
		return ip, nil
	}
	a.ips[key] = fmt.Sprintf("127.0.0.%d", 10+len(a.ips))
	return a.ips[key], nil
}

func (a *fakeAlloc) Port(key string) (int, error) {
	if p, ok := a.ports[key]; ok {
		return p, nil
	}
	a.ports[key] = 20000 + len(a.ports)
	return a.ports[key], nil
}

// load writes a manifest directory and loads it as weft up does.
func load(t *testing.T, files map[string]string) []*config.Object {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := config.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasErrors() {
		t.Fatalf("manifest: %v", r.Errors)
	}
	return r.Objects
}

const reviewsManifest = `apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1}
spec:
  service: reviews
  command: [weft, demo-app, reviews]
  ports: [{name: grpc, number: 9080, protocol: GRPC}]
  labels: {app: reviews, version: v1}
  serviceAccount: bookinfo-reviews
---
apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v2}
spec:
  service: reviews
  command: [weft, demo-app, reviews]
  env: {VERSION: v2}
  ports: [{name: grpc, number: 9080, protocol: GRPC}]
  labels: {app: reviews, version: v2}
  serviceAccount: bookinfo-reviews
  replicas: 2
  workingDir: sub
---
apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: sleep}
spec:
  command: [sleep, "1000"]
`

// TestNewPlan: replicas get their names, addresses, ports, labels and
// environment; a service gets one ServiceEntry, each replica with ports a
// WorkloadEntry and a Sidecar mapping the service port to its app port.
func TestNewPlan(t *testing.T) {
	objs := load(t, map[string]string{"bookinfo.yaml": reviewsManifest})
	p, problems, err := NewPlan(PlanOptions{Objects: objs, Alloc: newFakeAlloc()})
	if err != nil || len(problems) != 0 {
		t.Fatalf("NewPlan: %v %v", err, problems)
	}
	var names []string
	for _, r := range p.Replicas {
		names = append(names, r.Name+"@"+r.IP)
	}
	// Allocation follows the objects' order (reviews-v1, reviews-v2, sleep).
	want := []string{"reviews-v1@127.0.0.10", "reviews-v2-1@127.0.0.11", "reviews-v2-2@127.0.0.12", "sleep@127.0.0.13"}
	if !slices.Equal(names, want) {
		t.Fatalf("replicas %v, want %v", names, want)
	}
	r := p.Replicas[1]
	wantLabels := map[string]string{"app": "reviews", "version": "v2", ServiceLabel: "reviews", ReplicaLabel: "reviews-v2-1", tlsModeLabel: "istio"}
	if !reflect.DeepEqual(r.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", r.Labels, wantLabels)
	}
	if !strings.HasSuffix(r.Dir, string(filepath.Separator)+"sub") {
		t.Errorf("working directory %s, want the manifest's sub", r.Dir)
	}
	wantEnv := []string{
		"HTTP_PROXY=http://127.0.0.11:15001", "INSTANCE_IP=127.0.0.11", "NO_PROXY=localhost,127.0.0.1,::1",
		"POD_NAME=reviews-v2-1", "POD_NAMESPACE=default", "PORT=20001", "PORT_GRPC=20001",
		"SERVICE_ACCOUNT=bookinfo-reviews", "SERVICE_NAME=reviews", "VERSION=v2",
		"WEFT_PROXY=127.0.0.11:15001", "http_proxy=http://127.0.0.11:15001", "no_proxy=localhost,127.0.0.1,::1",
	}
	if !slices.Equal(r.Env, wantEnv) {
		t.Errorf("env\n got %q\nwant %q", r.Env, wantEnv)
	}
	if sleep := p.Replicas[3]; len(sleep.Ports) != 0 || !slices.Contains(sleep.Env, "SERVICE_NAME=sleep") {
		t.Errorf("client replica: ports %v env %v", sleep.Ports, sleep.Env)
	}

	kinds := map[config.Kind][]string{}
	for _, o := range p.Objects {
		kinds[o.Kind] = append(kinds[o.Kind], o.Name)
		if errs := config.Validate(o); len(errs) != 0 {
			t.Errorf("%s: %v", o.Key(), errs)
		}
	}
	wantKinds := map[config.Kind][]string{
		config.ServiceEntry:  {"reviews"},
		config.WorkloadEntry: {"reviews-v1", "reviews-v2-1", "reviews-v2-2"},
		config.Sidecar:       {"reviews-v1", "reviews-v2-1", "reviews-v2-2"},
	}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("generated %v, want %v", kinds, wantKinds)
	}
	for _, o := range p.Objects {
		switch s := o.Spec.(type) {
		case *networking.ServiceEntry:
			if s.Hosts[0] != "reviews.default.svc.cluster.local" || s.Location != networking.ServiceEntry_MESH_INTERNAL ||
				s.Resolution != networking.ServiceEntry_STATIC || s.WorkloadSelector.Labels[ServiceLabel] != "reviews" ||
				len(s.Ports) != 1 || s.Ports[0].Number != 9080 || s.Ports[0].Protocol != "GRPC" {
				t.Errorf("ServiceEntry %v", s)
			}
		case *networking.WorkloadEntry:
			if o.Name == "reviews-v2-1" && (s.Address != "127.0.0.11" || s.ServiceAccount != "bookinfo-reviews" || s.Labels[tlsModeLabel] != "istio") {
				t.Errorf("WorkloadEntry %v", s)
			}
		case *networking.Sidecar:
			if o.Name == "reviews-v2-1" && (s.WorkloadSelector.Labels[ReplicaLabel] != "reviews-v2-1" || len(s.Ingress) != 1 ||
				s.Ingress[0].Port.Number != 9080 || s.Ingress[0].DefaultEndpoint != "127.0.0.1:20001" || s.Egress != nil) {
				t.Errorf("Sidecar %v", s)
			}
		}
	}
}

// TestNewPlanStable: planning again with the same allocator keeps every
// replica's address and ports.
func TestNewPlanStable(t *testing.T) {
	objs := load(t, map[string]string{"bookinfo.yaml": reviewsManifest})
	alloc := newFakeAlloc()
	a, _, _ := NewPlan(PlanOptions{Objects: objs, Alloc: alloc})
	b, _, _ := NewPlan(PlanOptions{Objects: reversed(objs), Alloc: alloc})
	for i := range a.Replicas {
		if !reflect.DeepEqual(a.Replicas[i], b.Replicas[i]) {
			t.Errorf("replica %s changed: %+v then %+v", a.Replicas[i].Name, a.Replicas[i], b.Replicas[i])
		}
	}
}

func reversed(objs []*config.Object) []*config.Object {
	out := slices.Clone(objs)
	slices.Reverse(out)
	return out
}

// TestNewPlanProblems: a Workload whose ports conflict with its service's
// is skipped with a problem; the namespace's Sidecar gives the generated
// Sidecars its egress.
func TestNewPlanProblems(t *testing.T) {
	objs := load(t, map[string]string{"m.yaml": `apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: a-v1}
spec: {service: a, command: [a], ports: [{name: http, number: 80}]}
---
apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: a-v2}
spec: {service: a, command: [a], ports: [{name: http, number: 80, protocol: TCP}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: ["./*"]}]
`})
	p, problems, err := NewPlan(PlanOptions{Objects: objs, Alloc: newFakeAlloc()})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Key.Name != "a-v2" || !strings.Contains(problems[0].Message, "port http 80 TCP conflicts with port http 80 HTTP of Workload default/a-v1") {
		t.Fatalf("problems %v", problems)
	}
	if len(p.Replicas) != 1 || p.Replicas[0].Name != "a-v1" {
		t.Fatalf("replicas %v, want a-v1 only", p.Replicas)
	}
	for _, o := range p.Objects {
		if sc, ok := o.Spec.(*networking.Sidecar); ok && (len(sc.Egress) != 1 || sc.Egress[0].Hosts[0] != "./*") {
			t.Errorf("generated Sidecar egress %v, want the namespace Sidecar's", sc.Egress)
		}
	}
}

// TestTryRequests: the gateway's listeners and the VirtualServices bound
// to its Gateways give the URLs to try.
func TestTryRequests(t *testing.T) {
	objs := load(t, map[string]string{"gw.yaml": `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {exact: /productpage}}, {uri: {prefix: /static}}]
    route: [{destination: {host: productpage}}]
  - match: [{uri: {regex: "/x.*"}}]
    route: [{destination: {host: productpage}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  gateways: [default/gw]
  http: [{route: [{destination: {host: api}}]}]
`})
	got := tryRequests(objs, []string{"0.0.0.0:8080"})
	want := []Request{{URL: "http://127.0.0.1:8080/", Host: "api.example.com"}, {URL: "http://127.0.0.1:8080/productpage"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if c := want[0].Curl(); c != "curl -H 'Host: api.example.com' http://127.0.0.1:8080/" {
		t.Errorf("curl %q", c)
	}
}

// TestPrefixWriter: each line gets the prefix, partial lines wait.
func TestPrefixWriter(t *testing.T) {
	var b strings.Builder
	pw := &prefixWriter{prefix: "a | ", out: &syncWriter{w: &b}}
	pw.Write([]byte("one\ntw"))
	pw.Write([]byte("o\nthree"))
	if b.String() != "a | one\na | two\n" {
		t.Errorf("before flush %q", b.String())
	}
	pw.flush()
	if b.String() != "a | one\na | two\na | three\n" {
		t.Errorf("after flush %q", b.String())
	}
}

// TestEnvName: port names become PORT_<NAME> suffixes.
func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"http": "HTTP", "grpc-web": "GRPC_WEB", "a.b2": "A_B2"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
