package istiostats

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Workload is what the metrics say about one side of a request: Istio's
// WorkloadMetadataObject plus the principal. Values are as they appear in
// labels: a peer's missing values are already "unknown" ("latest" for the
// canonical revision), as Istio's stats plugin reports them.
type Workload struct {
	Name              string // WORKLOAD_NAME
	Namespace         string
	App               string
	Version           string
	CanonicalService  string
	CanonicalRevision string
	Cluster           string // CLUSTER_ID
	// Principal is the SPIFFE ID, "spiffe://TD/ns/NS/sa/SA".
	Principal string
	// Instance is the pod name (NAME) and ServiceAccount the workload's
	// service account: they are part of the metadata exchange, not labels.
	Instance       string
	ServiceAccount string
}

// Node metadata keys (Istio's names, extensions/common/metadata_object.h).
const (
	metaName           = "NAME"
	metaNamespace      = "NAMESPACE"
	metaWorkloadName   = "WORKLOAD_NAME"
	metaClusterID      = "CLUSTER_ID"
	metaLabels         = "LABELS"
	metaServiceAccount = "SERVICE_ACCOUNT"
)

// SelfFromNode derives the proxy's own workload from its bootstrap node
// metadata. As Istio's injector does for the canonical labels, the
// canonical service is service.istio.io/canonical-name, else
// app.kubernetes.io/name, else app, else the workload name; the canonical
// revision is service.istio.io/canonical-revision, else
// app.kubernetes.io/version, else version, else "latest". App and version
// are the labels app and version as they are (Istio reports its own empty
// values as empty). principal is the proxy's SPIFFE ID when known.
func SelfFromNode(node *corev3.Node, principal string) *Workload {
	md := node.GetMetadata().GetFields()
	str := func(k string) string { return md[k].GetStringValue() }
	labels := md[metaLabels].GetStructValue().GetFields()
	label := func(k string) string { return labels[k].GetStringValue() }
	w := &Workload{
		Name:           str(metaWorkloadName),
		Namespace:      str(metaNamespace),
		Cluster:        str(metaClusterID),
		Instance:       str(metaName),
		ServiceAccount: str(metaServiceAccount),
		App:            label("app"),
		Version:        label("version"),
		Principal:      principal,
	}
	w.CanonicalService = first(label(canonicalNameLabel), label("app.kubernetes.io/name"), label("app"), w.Name)
	w.CanonicalRevision = first(label(canonicalRevisionLabel), label("app.kubernetes.io/version"), label("version"), latest)
	return w
}

// first returns the first non-empty value.
func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// orUnknown returns v, or "unknown" when it is empty.
func orUnknown(v string) string {
	if v == "" {
		return unknown
	}
	return v
}

// peerFromStruct reads a metadata exchange Struct (Istio's
// convertStructToWorkloadMetadata: NAME, NAMESPACE, WORKLOAD_NAME,
// CLUSTER_ID, LABELS with the canonical labels, app and version; weft adds
// SERVICE_ACCOUNT). Values are raw (possibly empty).
func peerFromStruct(st *structpb.Struct) *Workload {
	md := st.GetFields()
	labels := md[metaLabels].GetStructValue().GetFields()
	return &Workload{
		Instance:          md[metaName].GetStringValue(),
		Namespace:         md[metaNamespace].GetStringValue(),
		Name:              md[metaWorkloadName].GetStringValue(),
		Cluster:           md[metaClusterID].GetStringValue(),
		ServiceAccount:    md[metaServiceAccount].GetStringValue(),
		CanonicalService:  labels[canonicalNameLabel].GetStringValue(),
		CanonicalRevision: labels[canonicalRevisionLabel].GetStringValue(),
		App:               labels["app"].GetStringValue(),
		Version:           labels["version"].GetStringValue(),
	}
}

// asPeer returns w with Istio's defaults for a peer's missing values:
// "unknown", and "latest" for the canonical revision. namespace, when not
// empty, is the namespace of the peer's principal, which wins over the
// metadata's (Istio's fallback order).
func (w Workload) asPeer(namespace string) *Workload {
	if namespace != "" {
		w.Namespace = namespace
	}
	w.Name, w.Namespace, w.App, w.Version = orUnknown(w.Name), orUnknown(w.Namespace), orUnknown(w.App), orUnknown(w.Version)
	w.CanonicalService, w.Cluster, w.Principal = orUnknown(w.CanonicalService), orUnknown(w.Cluster), orUnknown(w.Principal)
	if w.CanonicalRevision == "" {
		w.CanonicalRevision = latest
	}
	return &w
}

// unknownPeer is a peer nothing is known about.
var unknownPeer = Workload{}.asPeer("")

// Endpoint metadata keys: filter_metadata.istio.workload is Istio's
// "name;namespace;canonical-service;canonical-revision;cluster"; app,
// version and principal are weft's additions (Istio's endpoint encoding
// has no app and version), set by weft-control from the workload's labels
// and service account.
const (
	endpointFilter    = "istio"
	endpointWorkload  = "workload"
	endpointApp       = "app"
	endpointVersion   = "version"
	endpointPrincipal = "principal"
)

// peerFromEndpoint reads the destination workload from an upstream host's
// metadata (Istio's extractEndpointMetadata / convertEndpointMetadata),
// with Istio's defaults for missing values. It returns unknownPeer when the
// metadata has no workload.
func peerFromEndpoint(md *corev3.Metadata) *Workload {
	f := md.GetFilterMetadata()[endpointFilter].GetFields()
	parts := strings.Split(f[endpointWorkload].GetStringValue(), ";")
	if len(parts) < 5 {
		return unknownPeer
	}
	w := Workload{
		Name: parts[0], Namespace: parts[1], CanonicalService: parts[2], CanonicalRevision: parts[3], Cluster: parts[4],
		App: f[endpointApp].GetStringValue(), Version: f[endpointVersion].GetStringValue(),
		Principal: f[endpointPrincipal].GetStringValue(),
	}
	return w.asPeer(namespaceOf(w.Principal))
}

// namespaceOf returns the namespace of a principal
// ".../ns/NAMESPACE/sa/SA", or "" (Istio's getNamespace).
func namespaceOf(principal string) string {
	i := strings.Index(principal, "/ns/")
	if i < 0 {
		return ""
	}
	rest := principal[i+len("/ns/"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// serviceAccountOf returns the service account of a principal
// ".../sa/SA", or "".
func serviceAccountOf(principal string) string {
	i := strings.Index(principal, "/sa/")
	if i < 0 {
		return ""
	}
	rest := principal[i+len("/sa/"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
