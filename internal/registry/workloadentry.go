package registry

import (
	"net/netip"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Endpoint TLS modes (Istio's security.istio.io/tlsMode values).
const (
	// TLSModeIstio: the workload runs a sidecar that accepts Istio mTLS.
	TLSModeIstio = "istio"
	// TLSModeDisabled: plain traffic (Istio's default).
	TLSModeDisabled = "disabled"
)

// Labels and annotations Istio reads on workloads.
const (
	LabelTLSMode      = "security.istio.io/tlsMode"
	LabelWorkloadName = "service.istio.io/workload-name"
	// LabelLocality is Istio's legacy locality label, "region.zone.subzone".
	LabelLocality        = "istio-locality"
	LabelTopologyRegion  = "topology.kubernetes.io/region"
	LabelTopologyZone    = "topology.kubernetes.io/zone"
	LabelTopologySubzone = "topology.istio.io/subzone"
	LabelTopologyCluster = "topology.istio.io/cluster"
	LabelTopologyNetwork = "topology.istio.io/network"

	AnnotationAutoRegistrationGroup = "istio.io/autoRegistrationGroup"
	AnnotationHealthChecksEnabled   = "proxy.istio.io/health-checks-enabled"
)

// unixPrefix marks a Unix domain socket address.
const unixPrefix = "unix://"

// weInput is a WorkloadEntry prepared for selection.
type weInput struct {
	obj  *config.Object
	spec *networking.WorkloadEntry
	// labels are spec.labels with metadata.labels over them (Istio's
	// ConvertWorkloadEntry: metadata wins).
	labels       map[string]string
	workloadName string
	// hostnameAddress: the address is a hostname or a Unix socket, so only
	// DNS ServiceEntries may use the entry (Istio's DNSServiceEntryOnly).
	hostnameAddress bool
	// unhealthy: health checks are enabled, and file mode has no health
	// status, so Istio would treat the entry as unhealthy.
	unhealthy bool
}

// workload prepares a WorkloadEntry object.
func (b *builder) workload(obj *config.Object, spec *networking.WorkloadEntry) weInput {
	labels := spec.Labels // read-only: config objects are immutable
	if len(obj.Labels) > 0 {
		labels = make(map[string]string, len(spec.Labels)+len(obj.Labels))
		for k, v := range spec.Labels {
			labels[k] = v
		}
		for k, v := range obj.Labels {
			labels[k] = v
		}
	}
	we := weInput{obj: obj, spec: spec, labels: labels, workloadName: obj.Name}
	if g, ok := obj.Annotations[AnnotationAutoRegistrationGroup]; ok {
		we.workloadName = g
	} else if n, ok := labels[LabelWorkloadName]; ok {
		we.workloadName = n
	}
	if _, err := netip.ParseAddr(spec.Address); err != nil {
		we.hostnameAddress = true
	}
	if v, ok := obj.Annotations[AnnotationHealthChecksEnabled]; ok && healthChecksOn(v) {
		we.unhealthy = true
		b.fail(obj, "metadata.annotations", true, "%s is true, but file mode has no health status for WorkloadEntries: Istio treats the entry as unhealthy until its agent reports, so it is no endpoint. Remove the annotation to use it", AnnotationHealthChecksEnabled)
	}
	return we
}

func healthChecksOn(v string) bool {
	on, err := strconv.ParseBool(v)
	return err == nil && on
}

// workloadEndpoint converts a WorkloadEntry (selected, or inline in
// spec.endpoints) into an endpoint of a ServiceEntry with ports (Istio's
// convertEndpoint). ns is the ServiceEntry's namespace.
//
// Two differences from Istio, on purpose: ServiceAccount stays the name
// as written (Istio turns it into spiffe://TRUST_DOMAIN/ns/NS/sa/NAME;
// translation, which knows the trust domain, does that from Namespace and
// ServiceAccount), and inline endpoints get the ServiceEntry's namespace
// (Istio leaves it empty) so that this works for them too.
func (b *builder) workloadEndpoint(we *networking.WorkloadEntry, labels map[string]string, ns, workloadName string, src config.Key, ports []model.Port) *model.Endpoint {
	locality := we.Locality
	if locality == "" && labels[LabelLocality] != "" {
		locality = strings.ReplaceAll(labels[LabelLocality], ".", "/")
	}
	return &model.Endpoint{
		Address:        we.Address,
		Ports:          endpointPorts(we, ports),
		Labels:         augmentLabels(labels, b.o.ClusterID, locality, we.Network),
		Network:        we.Network,
		Locality:       locality,
		Weight:         we.Weight,
		ServiceAccount: we.ServiceAccount,
		TLSMode:        tlsMode(we, labels),
		WorkloadName:   workloadName,
		Namespace:      ns,
		Source:         src,
	}
}

// endpointPorts resolves the endpoint's port for every service port, in
// Istio's order: the entry's ports[name], else the port's targetPort, else
// its number. A Unix socket has no port (the map is empty; translation
// recognises the unix:// address).
func endpointPorts(we *networking.WorkloadEntry, ports []model.Port) map[string]uint32 {
	out := make(map[string]uint32, len(ports))
	if strings.HasPrefix(we.Address, unixPrefix) {
		return out
	}
	for _, p := range ports {
		switch n := we.Ports[p.Name]; {
		case n > 0:
			out[p.Name] = n
		case p.TargetPort > 0:
			out[p.Name] = p.TargetPort
		default:
			out[p.Name] = p.Number
		}
	}
	return out
}

// tlsMode is Istio's getTLSModeFromWorkloadEntry: the tlsMode label when
// present, else "istio" when a service account is set, else "disabled".
func tlsMode(we *networking.WorkloadEntry, labels map[string]string) string {
	if v, ok := labels[LabelTLSMode]; ok {
		return v
	}
	if we.ServiceAccount != "" {
		return TLSModeIstio
	}
	return TLSModeDisabled
}

// augmentLabels is Istio's AugmentLabels: a copy of in with the topology
// labels of the locality, cluster and network (the network label only when
// in has none).
func augmentLabels(in map[string]string, cluster, locality, network string) map[string]string {
	out := make(map[string]string, len(in)+5)
	for k, v := range in {
		out[k] = v
	}
	parts := strings.SplitN(locality, "/", 3)
	for i, key := range []string{LabelTopologyRegion, LabelTopologyZone, LabelTopologySubzone} {
		if i < len(parts) && parts[i] != "" {
			out[key] = parts[i]
		}
	}
	if cluster != "" {
		out[LabelTopologyCluster] = cluster
	}
	if network != "" && out[LabelTopologyNetwork] == "" {
		out[LabelTopologyNetwork] = network
	}
	return out
}

// workloadIndex finds the WorkloadEntries a selector selects, per
// namespace, through an inverted index of labels: a selection costs the
// size of its rarest label's posting list, not the number of entries.
type workloadIndex struct {
	byNamespace map[string]*namespaceWorkloads
}

type namespaceWorkloads struct {
	all []*weInput // sorted by name
	// byLabel[key][value] lists indexes into all, ascending.
	byLabel map[string]map[string][]int
}

// newWorkloadIndex indexes wes (sorted by namespace then name).
func newWorkloadIndex(wes []weInput) *workloadIndex {
	x := &workloadIndex{byNamespace: map[string]*namespaceWorkloads{}}
	for i := range wes {
		we := &wes[i]
		nw := x.byNamespace[we.obj.Namespace]
		if nw == nil {
			nw = &namespaceWorkloads{byLabel: map[string]map[string][]int{}}
			x.byNamespace[we.obj.Namespace] = nw
		}
		pos := len(nw.all)
		nw.all = append(nw.all, we)
		for k, v := range we.labels {
			vals := nw.byLabel[k]
			if vals == nil {
				vals = map[string][]int{}
				nw.byLabel[k] = vals
			}
			vals[v] = append(vals[v], pos)
		}
	}
	return x
}

// selectFor returns the entries of namespace ns whose labels include every
// label of sel (non-empty), sorted by name.
func (x *workloadIndex) selectFor(ns string, sel map[string]string) []*weInput {
	nw := x.byNamespace[ns]
	if nw == nil {
		return nil
	}
	var rarest []int
	first := true
	for k, v := range sel {
		list := nw.byLabel[k][v]
		if len(list) == 0 {
			return nil
		}
		if first || len(list) < len(rarest) {
			rarest, first = list, false
		}
	}
	var out []*weInput
	for _, pos := range rarest {
		we := nw.all[pos]
		if model.SelectorMatches(sel, we.labels) {
			out = append(out, we)
		}
	}
	return out
}
