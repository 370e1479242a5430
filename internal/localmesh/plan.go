// Package localmesh is `weft up`: the whole mesh on one machine, in one
// process. It reads a directory of Istio YAML and weft up's local manifest
// (config.Workload objects), and runs weft-control in process (with the
// mesh CA), an ingress gateway (a router proxy labelled
// istio=ingressgateway), one sidecar per workload replica (agent and
// proxy in process, each on its own loopback address 127.0.0.N) and the
// workloads' commands as child processes.
//
// What the manifest becomes, in memory (never written to the user's
// directory; the directory's own objects win on a shared key):
//
//   - per service: a ServiceEntry SERVICE.NS.svc.cluster.local,
//     MESH_INTERNAL, STATIC, with the ports of its Workloads and a
//     workloadSelector on the label local.weft.dev/service;
//   - per replica: a WorkloadEntry at the replica's loopback address with
//     its serviceAccount and the label security.istio.io/tlsMode=istio
//     (its sidecar has a certificate, so other sidecars use mTLS to it),
//     and a Sidecar selecting that replica only (label
//     local.weft.dev/replica) whose ingress listeners map each service
//     port (on 127.0.0.N) to the port the app really listens on
//     (127.0.0.1:PORT_<NAME>), as Istio's Sidecar ingress defaultEndpoint
//     does. Inbound ports therefore stay the service ports, so that
//     PeerAuthentication portLevelMtls and AuthorizationPolicy ports are
//     written as in Kubernetes; the Sidecar copies the egress of the
//     namespace's (or root namespace's) Sidecar from the directory, if
//     any.
//
// Plan is the pure part (manifest → replicas and objects, tested without
// running anything); Run runs it.
package localmesh

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/config"
)

// Labels weft up puts on its WorkloadEntries and sidecars.
const (
	// ServiceLabel selects a service's WorkloadEntries (the generated
	// ServiceEntry's workloadSelector).
	ServiceLabel = "local.weft.dev/service"
	// ReplicaLabel names one replica (the generated Sidecar's selector).
	ReplicaLabel = "local.weft.dev/replica"
	// tlsModeLabel is Istio's label for a workload whose sidecar speaks
	// mTLS.
	tlsModeLabel = "security.istio.io/tlsMode"
)

// Proxy ports on each replica's loopback address (Istio's numbers).
const (
	AdminPort    = 15000
	OutboundPort = 15001 // the sidecar's outbound HTTP proxy listener
	MetricsPort  = 15090
)

// Replica is one running copy of a Workload: its sidecar's address and
// identity, and the command with its environment.
type Replica struct {
	// Name is the replica's name: the Workload's name, with "-1", "-2",
	// ... when it has several replicas. It is the sidecar's POD_NAME and
	// the WorkloadEntry's name.
	Name string
	// Workload is the Workload object's key; Version its version (a change
	// restarts the replica).
	Workload config.Key
	Version  string
	// Namespace and Service (empty for a client without ports).
	Namespace, Service string
	// IP is the sidecar's loopback address (127.0.0.N).
	IP string
	// Ports are the service ports with the app's port for each.
	Ports []Port
	// Labels are the sidecar's (and WorkloadEntry's) labels: the
	// Workload's, ServiceLabel, ReplicaLabel and tlsMode=istio.
	Labels         map[string]string
	ServiceAccount string
	// Command is argv, Command[0] resolved by Run ("weft": this binary).
	Command []string
	// Env is what weft up adds to its own environment (sorted KEY=VALUE).
	Env []string
	// Dir is the working directory.
	Dir string
}

// Port is one service port of a replica.
type Port struct {
	config.WorkloadPort
	// App is the port the app listens on, on 127.0.0.1.
	App int
}

// Outbound returns the sidecar's outbound HTTP proxy address, ip:port.
func (r *Replica) Outbound() string { return r.IP + ":" + strconv.Itoa(OutboundPort) }

// Admin returns the sidecar's admin address, ip:port.
func (r *Replica) Admin() string { return r.IP + ":" + strconv.Itoa(AdminPort) }

// Metrics returns the sidecar's Prometheus listener, ip:port.
func (r *Replica) Metrics() string { return r.IP + ":" + strconv.Itoa(MetricsPort) }

// Plan is what a manifest asks for.
type Plan struct {
	// Replicas are sorted by name.
	Replicas []*Replica
	// Objects are the generated ServiceEntries, WorkloadEntries and
	// Sidecars (overlay defaults for weft-control).
	Objects []*config.Object
}

// Allocator hands out loopback addresses and app ports. Implementations
// keep what they gave to a key, so that a replanned replica keeps its
// address and ports.
type Allocator interface {
	// IP returns the loopback address of the replica named key.
	IP(key string) (string, error)
	// Port returns a free port on 127.0.0.1 for key (replica/port name).
	Port(key string) (int, error)
}

// PlanOptions are the inputs of NewPlan.
type PlanOptions struct {
	// Objects are the configuration in force: the Workloads are planned,
	// the Sidecars without selector give the generated Sidecars their
	// egress.
	Objects []*config.Object
	// RootNamespace is the mesh-wide configuration namespace (default
	// istio-system).
	RootNamespace string
	Alloc         Allocator
}

// NewPlan turns the Workloads of o.Objects into replicas and generated
// objects. Problems are per Workload: a Workload in conflict with an
// earlier one of the same service (another protocol or name for a port
// number) is skipped and reported; the error is for an allocation that
// failed (no free address or port).
func NewPlan(o PlanOptions) (*Plan, []*config.Error, error) {
	if o.RootNamespace == "" {
		o.RootNamespace = "istio-system"
	}
	p := &Plan{}
	var problems []*config.Error
	services := map[config.Key]*serviceAcc{} // key: ServiceEntry's
	for _, obj := range o.Objects {
		w, ok := config.WorkloadOf(obj)
		if !ok {
			continue
		}
		if w.Service != "" && len(w.Ports) > 0 {
			k := config.Key{Kind: config.ServiceEntry, Namespace: obj.Namespace, Name: w.Service}
			acc := services[k]
			if acc == nil {
				acc = &serviceAcc{}
				services[k] = acc
			}
			if msg := acc.add(obj, w); msg != "" {
				problems = append(problems, &config.Error{Source: obj.Source, Key: obj.Key(), Path: "spec.ports", Message: msg})
				continue
			}
		}
		rs, err := replicas(obj, w, o.Alloc)
		if err != nil {
			return nil, problems, err
		}
		p.Replicas = append(p.Replicas, rs...)
	}
	sort.Slice(p.Replicas, func(i, j int) bool { return p.Replicas[i].Name < p.Replicas[j].Name })
	if dup := duplicateReplica(p.Replicas); dup != nil {
		return nil, problems, fmt.Errorf("replica %s of %s: another Workload has a replica of that name: rename one of them", dup.Name, dup.Workload)
	}
	objs, errs := generate(p.Replicas, services, egressSidecars(o.Objects, o.RootNamespace))
	p.Objects = objs
	return p, append(problems, errs...), nil
}

// serviceAcc gathers the ports of the Workloads of one service.
type serviceAcc struct {
	ports []config.WorkloadPort
	from  []string // the Workload that declared each port
}

// add merges a Workload's ports into its service's, or says why they
// conflict.
func (s *serviceAcc) add(obj *config.Object, w *config.WorkloadSpec) string {
	for _, p := range w.Ports {
		i := slices.IndexFunc(s.ports, func(q config.WorkloadPort) bool { return q.Number == p.Number || q.Name == p.Name })
		switch {
		case i < 0:
		case s.ports[i] == p:
			continue
		default:
			q := s.ports[i]
			return fmt.Sprintf("port %s %d %s conflicts with port %s %d %s of Workload %s of the same service %q: the Workloads of one service must declare the same ports",
				p.Name, p.Number, p.Protocol, q.Name, q.Number, q.Protocol, s.from[i], w.Service)
		}
	}
	for _, p := range w.Ports {
		if !slices.Contains(s.ports, p) {
			s.ports = append(s.ports, p)
			s.from = append(s.from, obj.Namespace+"/"+obj.Name)
		}
	}
	return ""
}

// replicas plans a Workload's replicas.
func replicas(obj *config.Object, w *config.WorkloadSpec, alloc Allocator) ([]*Replica, error) {
	var out []*Replica
	for i := range w.Replicas {
		name := obj.Name
		if w.Replicas > 1 {
			name += "-" + strconv.Itoa(i+1)
		}
		ip, err := alloc.IP(obj.Namespace + "/" + name)
		if err != nil {
			return nil, fmt.Errorf("replica %s of Workload %s/%s: %w", name, obj.Namespace, obj.Name, err)
		}
		r := &Replica{
			Name: name, Workload: obj.Key(), Version: obj.Version,
			Namespace: obj.Namespace, Service: w.Service, IP: ip,
			ServiceAccount: w.ServiceAccount, Command: slices.Clone(w.Command),
			Dir: workingDir(obj.Source.File, w.WorkingDir),
		}
		for _, wp := range w.Ports {
			app, err := alloc.Port(obj.Namespace + "/" + name + "/" + wp.Name)
			if err != nil {
				return nil, fmt.Errorf("port %s of replica %s: %w", wp.Name, name, err)
			}
			r.Ports = append(r.Ports, Port{WorkloadPort: wp, App: app})
		}
		r.Labels = maps.Clone(w.Labels)
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
		r.Labels[ReplicaLabel] = name
		r.Labels[tlsModeLabel] = "istio"
		if w.Service != "" {
			r.Labels[ServiceLabel] = w.Service
		}
		r.Env = replicaEnv(r, w.Env)
		out = append(out, r)
	}
	return out, nil
}

// workingDir resolves a Workload's workingDir against its manifest's
// directory.
func workingDir(manifest, dir string) string {
	base := filepath.Dir(manifest)
	switch {
	case dir == "":
		return base
	case filepath.IsAbs(dir):
		return dir
	}
	return filepath.Join(base, dir)
}

// replicaEnv is the environment weft up gives a replica's command (on top
// of its own): PORT (the first port's app port), PORT_<NAME> per port,
// WEFT_PROXY and HTTP_PROXY (the sidecar's outbound HTTP proxy), NO_PROXY
// for loopback, POD_NAME, POD_NAMESPACE, SERVICE_NAME, SERVICE_ACCOUNT,
// INSTANCE_IP, then the Workload's env (validation keeps it from
// overriding these).
func replicaEnv(r *Replica, extra map[string]string) []string {
	env := map[string]string{
		"WEFT_PROXY":      r.Outbound(),
		"HTTP_PROXY":      "http://" + r.Outbound(),
		"http_proxy":      "http://" + r.Outbound(),
		"NO_PROXY":        "localhost,127.0.0.1,::1",
		"no_proxy":        "localhost,127.0.0.1,::1",
		"POD_NAME":        r.Name,
		"POD_NAMESPACE":   r.Namespace,
		"SERVICE_NAME":    r.Service,
		"SERVICE_ACCOUNT": r.ServiceAccount,
		"INSTANCE_IP":     r.IP,
	}
	if r.Service == "" {
		env["SERVICE_NAME"] = r.Workload.Name
	}
	for i, p := range r.Ports {
		if i == 0 {
			env["PORT"] = strconv.Itoa(p.App)
		}
		env["PORT_"+EnvName(p.Name)] = strconv.Itoa(p.App)
	}
	maps.Copy(env, extra)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// EnvName is a port name as it appears in PORT_<NAME>: upper case, '-'
// and '.' as '_'.
func EnvName(port string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == '.':
			return '_'
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, port)
}

// duplicateReplica returns a replica whose name another replica of the
// same namespace has (sorted input), or nil.
func duplicateReplica(rs []*Replica) *Replica {
	seen := map[string]bool{}
	for _, r := range rs {
		k := r.Namespace + "/" + r.Name
		if seen[k] {
			return r
		}
		seen[k] = true
	}
	return nil
}
