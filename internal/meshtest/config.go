package meshtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane"
)

// WriteConfig replaces the file name in dir with content atomically (a
// temporary name weft-control's loader ignores, then a rename), as editors
// and kubectl-style tools do.
func WriteConfig(t testing.TB, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// RunConfigDir writes files (name → YAML) to a new directory and runs
// weft-control over it with o until the test ends (RunControlPlane). It
// sets o.ConfigDir; an empty o.XDSAddress or o.HTTPAddress is 127.0.0.1:0
// (a port the kernel picks) and a nil o.Logger discards. It returns the
// control plane and the directory, for later WriteConfig calls.
func RunConfigDir(t testing.TB, o controlplane.Options, files map[string]string) (*controlplane.ControlPlane, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		WriteConfig(t, dir, name, content)
	}
	o.ConfigDir = dir
	if o.XDSAddress == "" {
		o.XDSAddress = "127.0.0.1:0"
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = discard()
	}
	return RunControlPlane(t, o), dir
}

// Service is a mesh service as the tests declare it in Istio YAML: a
// ServiceEntry for NAME.default.svc.cluster.local selecting app=NAME, a
// WorkloadEntry per workload, and a DestinationRule with a subset per
// version (label version) when the workloads have versions.
type Service struct {
	Name string
	// Port is the service port; Protocol its Istio protocol (default
	// HTTP), whose lower case names the port.
	Port     int
	Protocol string
	// Workloads are the service's endpoints, in order.
	Workloads []Workload
}

// Workload is one WorkloadEntry of a Service, labelled app=Service.Name.
type Workload struct {
	Name, Address string
	// Port is the workload's port for the service port.
	Port int
	// Version, when set, is the label version and names a subset.
	Version string
	// ServiceAccount, when set, is the WorkloadEntry's serviceAccount.
	ServiceAccount string
	// MTLS adds the label security.istio.io/tlsMode=istio, as Istio's
	// injector labels pods with a sidecar that has a certificate.
	MTLS bool
}

// Host is the service's hostname.
func (s Service) Host() string { return s.Name + ".default.svc.cluster.local" }

func (s Service) protocol() string {
	if s.Protocol == "" {
		return "HTTP"
	}
	return s.Protocol
}

// YAML returns the ServiceEntry, the WorkloadEntries and (when a workload
// has a version) the DestinationRule, as one multi-document YAML.
func (s Service) YAML() string {
	portName := strings.ToLower(s.protocol())
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %d, name: %s, protocol: %s}
  workloadSelector:
    labels: {app: %s}
`, s.Name, s.Host(), s.Port, portName, s.protocol(), s.Name)
	var versions []string
	for _, w := range s.Workloads {
		labels := "app: " + s.Name
		if w.Version != "" {
			labels += ", version: " + w.Version
			versions = append(versions, w.Version)
		}
		if w.MTLS {
			labels += ", security.istio.io/tlsMode: istio"
		}
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: default}
spec:
  address: %s
  ports: {%s: %d}
  labels: {%s}
`, w.Name, w.Address, portName, w.Port, labels)
		if w.ServiceAccount != "" {
			fmt.Fprintf(&b, "  serviceAccount: %s\n", w.ServiceAccount)
		}
	}
	if len(versions) > 0 {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: default}
spec:
  host: %s
  subsets:
`, s.Name, s.Host())
		for _, v := range versions {
			fmt.Fprintf(&b, "  - {name: %s, labels: {version: %s}}\n", v, v)
		}
	}
	return b.String()
}

// Route is one HTTP route of a VirtualService (VirtualServiceYAML).
type Route struct {
	// Header, when set, matches requests carrying Header: yes.
	Header string
	// AbortStatus, when set, aborts every matched request with this status
	// in the caller's sidecar (fault.abort at 100 %).
	AbortStatus int
	// To are the destination subsets; with more than one, each carries its
	// weight (written even when 0).
	To []Destination
}

// Destination is a weighted subset of the service.
type Destination struct {
	Subset string
	Weight int
}

// VirtualServiceYAML returns the VirtualService named name on the service's
// host with routes, in order.
func (s Service) VirtualServiceYAML(name string, routes ...Route) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: default}
spec:
  hosts: [%s]
  http:
`, name, s.Host())
	for _, r := range routes {
		b.WriteString("  -")
		if r.Header != "" {
			fmt.Fprintf(&b, " match:\n    - headers:\n        %s: {exact: \"yes\"}\n   ", r.Header)
		}
		if r.AbortStatus != 0 {
			fmt.Fprintf(&b, " fault:\n      abort: {httpStatus: %d, percentage: {value: 100}}\n   ", r.AbortStatus)
		}
		b.WriteString(" route:\n")
		for _, d := range r.To {
			fmt.Fprintf(&b, "    - destination: {host: %s, subset: %s}\n", s.Host(), d.Subset)
			if len(r.To) > 1 {
				fmt.Fprintf(&b, "      weight: %d\n", d.Weight)
			}
		}
	}
	return b.String()
}
