package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestValidateWorkload decodes and validates Workload specs (weft up's
// manifest): the documented example is valid; each broken field is
// reported at its path.
func TestValidateWorkload(t *testing.T) {
	runValidation(t, Workload, []vcase{
		{name: "doc example", spec: `
service: reviews
command: ["weft", "demo-app", "reviews"]
env: {VERSION: v2}
ports: [{name: grpc, number: 9080, protocol: GRPC}]
labels: {app: reviews, version: v2}
serviceAccount: bookinfo-reviews
replicas: 1
`},
		{name: "client without service", spec: "command: [sleep, '1000']\n"},
		{name: "no command", spec: "service: a\nports: [{name: http, number: 80}]\n", want: []string{
			`spec.command: command is required: the program and its arguments, e.g. ["weft", "demo-app", "reviews"] ("weft" runs this weft binary)`,
		}},
		{name: "ports without service", spec: "command: [a]\nports: [{name: http, number: 80}]\n", want: []string{
			"spec.service: service is required when the workload has ports: it names the host SERVICE.NAMESPACE.svc.cluster.local",
		}},
		{name: "bad service name", spec: "command: [a]\nservice: Reviews.x\nports: [{name: http, number: 80}]\n", want: []string{
			`spec.service: invalid service name "Reviews.x": lower case alphanumerics and '-', starting and ending with an alphanumeric, at most 63 characters`,
		}},
		{name: "service without ports", spec: "command: [a]\nservice: a\n", want: []string{
			`W spec.ports: no ports: service "a" gets no ServiceEntry (the workload only makes calls)`,
		}},
		{name: "bad ports", spec: `
command: [a]
service: a
ports:
- {number: 80}
- {name: http, number: 80, protocol: FTP}
- {name: http, number: 0}
- {name: dns, number: 53, protocol: UDP}
`, want: []string{
			"spec.ports[0].name: name is required (for example http or grpc): the app reads its port from PORT_<NAME>",
			"spec.ports[1].number: port 80 is already defined",
			`spec.ports[1].protocol: unsupported protocol "FTP" (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS, MYSQL)`,
			`spec.ports[2].name: port name "http" is already defined`,
			"spec.ports[2].number: port number 0 must be in the range 1..65535",
			"spec.ports[3].protocol: UDP is not proxied by weft-proxy: use TCP, HTTP, HTTP2 or GRPC",
		}},
		{name: "reserved and bad env", spec: "command: [a]\nenv: {PORT: '1', PORT_HTTP: '2', WEFT_PROXY: x, 1X: y, OK_1: z}\n", want: []string{
			`spec.env["1X"]: invalid environment variable name "1X": letters, digits and '_', not starting with a digit`,
			`spec.env["PORT"]: PORT is set by weft up (PORT, PORT_<NAME>, WEFT_PROXY, HTTP_PROXY, POD_NAME, POD_NAMESPACE, SERVICE_NAME, ...): remove it from env`,
			`spec.env["PORT_HTTP"]: PORT_HTTP is set by weft up (PORT, PORT_<NAME>, WEFT_PROXY, HTTP_PROXY, POD_NAME, POD_NAMESPACE, SERVICE_NAME, ...): remove it from env`,
			`spec.env["WEFT_PROXY"]: WEFT_PROXY is set by weft up (PORT, PORT_<NAME>, WEFT_PROXY, HTTP_PROXY, POD_NAME, POD_NAMESPACE, SERVICE_NAME, ...): remove it from env`,
		}},
		{name: "bad labels, account, replicas", spec: "command: [a]\nlabels: {app: 'a b'}\nserviceAccount: Bad_SA\nreplicas: 51\n", want: []string{
			`spec.labels["app"]: invalid label value "a b": at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`,
			`spec.serviceAccount: invalid service account "Bad_SA": lower case alphanumerics, '-' and '.', starting and ending with an alphanumeric`,
			"spec.replicas: replicas 51: at most 50 (each replica takes a loopback address)",
		}},
		{name: "unknown field", spec: "command: [a]\nreplica: 2\n", want: []string{
			"spec.replica: unknown field in weft.local.v1alpha1.Workload (did you mean replicas?)",
		}},
	})
}

// TestWorkloadAPIVersion: only local.weft.dev/v1alpha1 is read.
func TestWorkloadAPIVersion(t *testing.T) {
	for _, tc := range []struct{ apiVersion, want string }{
		{"local.weft.dev/v1", "apiVersion: apiVersion local.weft.dev/v1 is not supported: use local.weft.dev/v1alpha1"},
		{"networking.istio.io/v1", "apiVersion: apiVersion networking.istio.io/v1 is not supported for Workload: use local.weft.dev/v1alpha1"},
	} {
		doc := "apiVersion: " + tc.apiVersion + "\nkind: Workload\nmetadata: {name: x}\nspec: {command: [a]}\n"
		items, _ := decodeFile("t.yaml", []byte(doc))
		if len(items) != 1 || len(items[0].errs) != 1 {
			t.Fatalf("%s: items %d, want one item with one problem", tc.apiVersion, len(items))
		}
		if e := items[0].errs[0]; e.Path+": "+e.Message != tc.want {
			t.Errorf("%s: got %q, want %q", tc.apiVersion, e.Path+": "+e.Message, tc.want)
		}
	}
}

// TestWorkloadOf reads a decoded Workload with its defaults.
func TestWorkloadOf(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       WorkloadSpec
	}{
		{name: "defaults", spec: "service: a\ncommand: [run]\nports: [{name: web, number: 8080}]\n", want: WorkloadSpec{
			Service: "a", Command: []string{"run"}, ServiceAccount: "default", Replicas: 1,
			Ports: []WorkloadPort{{Name: "web", Number: 8080, Protocol: "HTTP"}},
		}},
		{name: "everything", spec: `
service: reviews
command: [weft, demo-app, reviews]
env: {VERSION: v2}
ports: [{name: grpc, number: 9080, protocol: GRPC}, {name: admin, number: 9081, protocol: TCP}]
labels: {app: reviews}
serviceAccount: sa
replicas: 3
workingDir: apps
`, want: WorkloadSpec{
			Service: "reviews", Command: []string{"weft", "demo-app", "reviews"}, Env: map[string]string{"VERSION": "v2"},
			Ports:  []WorkloadPort{{Name: "grpc", Number: 9080, Protocol: "GRPC"}, {Name: "admin", Number: 9081, Protocol: "TCP"}},
			Labels: map[string]string{"app": "reviews"}, ServiceAccount: "sa", Replicas: 3, WorkingDir: "apps",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: local.weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: x}\nspec:\n" + indent(tc.spec)
			items, _ := decodeFile("t.yaml", []byte(doc))
			if len(items) != 1 || !items[0].valid() {
				t.Fatalf("not one valid object: %d items", len(items))
			}
			got, ok := WorkloadOf(items[0].obj)
			if !ok {
				t.Fatal("WorkloadOf: not a Workload")
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
	if _, ok := WorkloadOf(&Object{Meta: Meta{Kind: VirtualService}}); ok {
		t.Error("WorkloadOf(VirtualService) = true")
	}
}

// TestLoadDirWorkloadAndMeshConfig: a directory for weft up loads without
// problems: the Workload defines its service's host for the cross-object
// checks (no "host not found" warning), and a MeshConfig mesh.yaml at the
// top is left to weft up (a mesh.yaml further down is read as objects).
func TestLoadDirWorkloadAndMeshConfig(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"mesh.yaml": "accessLogFile: /dev/stdout\n",
		"app.yaml": `apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: hello-v1}
spec: {service: hello, command: [hello], ports: [{name: http, number: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello]
  http: [{route: [{destination: {host: hello, port: {number: 8080}}}]}]
`,
		"sub/mesh.yaml": "accessLogFile: /dev/stdout\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Objects) != 2 {
		t.Errorf("objects: got %d, want the Workload and the VirtualService", len(r.Objects))
	}
	if len(r.Errors) == 0 {
		t.Error("no problem: want sub/mesh.yaml's (not an object)")
	}
	for _, e := range r.Errors {
		if !strings.Contains(e.Source.File, filepath.Join("sub", "mesh.yaml")) {
			t.Errorf("problem %v: want only sub/mesh.yaml's", e)
		}
	}
	objDir := t.TempDir() // a mesh.yaml of objects is read as any file
	vs := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n"
	if err := os.WriteFile(filepath.Join(objDir, MeshConfigFile), []byte(vs), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := LoadDir(objDir); err != nil || len(r.Objects) != 1 {
		t.Errorf("mesh.yaml of objects: %v, %v; want its VirtualService", r, err)
	}
}
