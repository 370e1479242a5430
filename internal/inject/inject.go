// Package inject adds weft's sidecar to Kubernetes Pods, as Istio's
// sidecar injector does (pkg/kube/inject in istio/istio): weft-proxy as a
// Kubernetes native sidecar (an init container with restartPolicy Always),
// the traffic-capture init container (`weft iptables`, as istio-init), the
// volumes they need, Istio's labels and annotations, and HTTP/TCP/gRPC app
// probes rewritten to the agent's status port.
//
// The same mutation serves the mutating admission webhook (Handler, for
// weft-control) and manual injection (InjectYAML, for `weft kube-inject`).
// Which namespaces are injected is decided by the API server through the
// webhook configuration's selectors (WebhookConfiguration); this package
// decides per pod (opt-out, already injected, host network).
package inject

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations Istio's injector reads or writes; weft keeps
// Istio's names so that Istio manifests and tooling work unchanged.
const (
	// LabelInject and AnnotationInject opt a pod in ("true") or out
	// ("false"); the label wins over the annotation, as in Istio.
	LabelInject      = "sidecar.istio.io/inject"
	AnnotationInject = "sidecar.istio.io/inject"
	// AnnotationStatus marks a pod as injected (Istio's
	// sidecar.istio.io/status JSON): a pod carrying it is left alone.
	AnnotationStatus = "sidecar.istio.io/status"
	// AnnotationRewriteProbes set to "false" keeps the app's probes.
	AnnotationRewriteProbes = "sidecar.istio.io/rewriteAppHTTPProbers"
	// AnnotationProxyImage overrides Options.ProxyImage for one pod.
	AnnotationProxyImage = "sidecar.istio.io/proxyImage"
	// AnnotationInterceptionMode: only REDIRECT is supported.
	AnnotationInterceptionMode = "sidecar.istio.io/interceptionMode"

	// NamespaceLabelWeft and NamespaceLabelIstio set to "enabled" turn
	// injection on for a namespace (WebhookConfiguration's selectors).
	NamespaceLabelWeft  = "weft-injection"
	NamespaceLabelIstio = "istio-injection"

	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
)

// Names of what the injector adds. The containers keep Istio's names
// (istio-proxy, istio-init) so that `kubectl logs -c istio-proxy`,
// dashboards and scrape configurations written for Istio keep working.
const (
	ProxyContainerName = "istio-proxy"
	InitContainerName  = "istio-init"

	volumeToken          = "istio-token"
	volumeRootCA         = "istiod-ca-cert"
	volumeWorkloadSocket = "workload-socket"

	mountToken          = "/var/run/secrets/tokens"
	mountRootCA         = "/var/run/secrets/istio"
	mountWorkloadSocket = "/var/run/secrets/workload-spiffe-uds"
)

// Ports of the sidecar, Istio's numbers.
const (
	// StatusPort is the agent's port that rewritten app probes target
	// (Istio's pilot-agent 15020).
	StatusPort = 15020
	// MetricsPort is where weft-proxy serves /stats/prometheus.
	MetricsPort = 15090
	// HealthPort is where weft-proxy serves /healthz/ready (Istio's 15021).
	HealthPort   = 15021
	outboundPort = 15001
	inboundPort  = 15006
)

// Version is the default image tag.
const Version = "latest"

// Options configure the injected containers. The zero value of each field
// takes the default written on it (see New).
type Options struct {
	// ProxyImage runs weft-proxy and weft (default
	// ghcr.io/weftmesh/weft:Version). The pod annotation
	// sidecar.istio.io/proxyImage overrides it.
	ProxyImage string
	// InitImage runs `weft iptables` (default ProxyImage).
	InitImage string
	// ProxyCommand and InitCommand are the containers' commands (default
	// ["weft-proxy", "sidecar"] and ["weft", "iptables"]); the injector
	// appends its flags.
	ProxyCommand []string
	InitCommand  []string
	// DiscoveryAddress is weft-control's xDS address (default
	// weft-control.istio-system.svc:15010).
	DiscoveryAddress string
	// CAAddress is weft-control's CA, host:port (default the
	// DiscoveryAddress host, port 15012).
	CAAddress string
	// TrustDomain of workload identities (default cluster.local).
	TrustDomain string
	// ClusterID is the node metadata CLUSTER_ID (default Kubernetes, as
	// Istio's).
	ClusterID string
	// TokenAudience of the projected service-account token the CA checks
	// (default istio-ca, Istio's).
	TokenAudience string
	// RootCertConfigMap holds the mesh root under root-cert.pem in every
	// injected namespace (default istio-ca-root-cert, Istio's).
	RootCertConfigMap string
	// ProxyUID is the user (and group) the proxy runs as and capture
	// excludes (default 1337).
	ProxyUID int64
	// Resources of both containers (default Istio's: requests 100m CPU,
	// 128Mi; limits 2 CPU, 1Gi).
	Resources *corev1.ResourceRequirements
	// NoProbeRewrite keeps app probes as they are for every pod (Istio's
	// default, kept here, is to rewrite them; see probes.go).
	NoProbeRewrite bool
	// Revision is the service.istio.io/canonical-revision fallback and the
	// status annotation's revision (default "default").
	Revision string
	// ProxyMetadata is the mesh's defaultConfig.proxyMetadata: set on
	// every sidecar's environment, under the pod's proxy.istio.io/config
	// annotation's; ISTIO_META_DNS_CAPTURE "true" turns on DNS capture
	// (dns.go).
	ProxyMetadata map[string]string
}

// Injector mutates pods. It is immutable and safe for concurrent use.
type Injector struct {
	o Options
}

// New fills in the defaults of o and checks it.
func New(o Options) (*Injector, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ProxyImage, "ghcr.io/weftmesh/weft:"+Version)
	def(&o.InitImage, o.ProxyImage)
	def(&o.DiscoveryAddress, "weft-control.istio-system.svc:15010")
	if o.CAAddress == "" {
		host, _, _ := strings.Cut(o.DiscoveryAddress, ":")
		o.CAAddress = host + ":15012"
	}
	def(&o.TrustDomain, "cluster.local")
	def(&o.ClusterID, "Kubernetes")
	def(&o.TokenAudience, "istio-ca")
	def(&o.RootCertConfigMap, "istio-ca-root-cert")
	def(&o.Revision, "default")
	if len(o.ProxyCommand) == 0 {
		o.ProxyCommand = []string{"weft-proxy", "sidecar"}
	}
	if len(o.InitCommand) == 0 {
		o.InitCommand = []string{"weft", "iptables"}
	}
	if o.ProxyUID == 0 {
		o.ProxyUID = 1337
	}
	o.ProxyMetadata = maps.Clone(o.ProxyMetadata) // the Injector is immutable
	if o.ProxyUID < 0 {
		return nil, fmt.Errorf("inject: ProxyUID %d: must be positive (the proxy never runs as root)", o.ProxyUID)
	}
	if o.Resources == nil {
		o.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		}
	}
	if !strings.Contains(o.DiscoveryAddress, ":") || !strings.Contains(o.CAAddress, ":") {
		return nil, fmt.Errorf("inject: DiscoveryAddress %q / CAAddress %q: want host:port", o.DiscoveryAddress, o.CAAddress)
	}
	return &Injector{o: o}, nil
}

// Decision says whether a pod is injected, and why not.
type Decision struct {
	Inject bool
	// Reason explains a skip ("" when Inject).
	Reason string
}

// ignoredNamespaces are never injected (Istio's injector skips
// kube-system and kube-public whatever the selectors say).
var ignoredNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// Decide applies the per-pod policy: host-network pods, system
// namespaces, pods already injected and pods opted out (label, then
// annotation sidecar.istio.io/inject false) are skipped. Namespace
// selection is the webhook configuration's job, not Decide's.
func Decide(namespace string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) Decision {
	switch {
	case spec.HostNetwork:
		return Decision{Reason: "the pod uses the host's network"}
	case ignoredNamespaces[namespace]:
		return Decision{Reason: "namespace " + namespace + " is never injected"}
	case injected(meta, spec):
		return Decision{Reason: "already injected"}
	}
	if v, ok := meta.Labels[LabelInject]; ok {
		if on, err := parseBool(v); err == nil && !on {
			return Decision{Reason: "label " + LabelInject + "=" + v}
		}
		return Decision{Inject: true}
	}
	if v, ok := meta.Annotations[AnnotationInject]; ok {
		if on, err := parseBool(v); err == nil && !on {
			return Decision{Reason: "annotation " + AnnotationInject + "=" + v}
		}
	}
	return Decision{Inject: true}
}

// injected reports whether a pod carries the status annotation or one of
// the injected containers.
func injected(meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	if _, ok := meta.Annotations[AnnotationStatus]; ok {
		return true
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if cs[i].Name == ProxyContainerName {
				return true
			}
		}
	}
	return false
}

// parseBool accepts Istio's spellings (y/yes/true/on, n/no/false/off).
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "on", "enabled":
		return true, nil
	case "n", "no", "false", "off", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", v)
}

// Target is the pod (or pod template) to mutate in place.
type Target struct {
	// Namespace is where the pod runs ("" reads Meta.Namespace).
	Namespace string
	// WorkloadName is the owning workload's name, when known (a
	// Deployment's for its template); "" derives it from the pod.
	WorkloadName string
	Meta         *metav1.ObjectMeta
	Spec         *corev1.PodSpec
}

// Inject mutates t in place when Decide says so and returns the decision.
// An error (an invalid traffic annotation, say) leaves t unchanged.
func (i *Injector) Inject(t Target) (Decision, error) {
	ns := t.Namespace
	if ns == "" {
		ns = t.Meta.Namespace
	}
	d := Decide(ns, t.Meta, t.Spec)
	if !d.Inject {
		return d, nil
	}
	if v := t.Meta.Annotations[AnnotationInterceptionMode]; v != "" && v != "REDIRECT" {
		return d, fmt.Errorf("metadata.annotations[%s]: %q: weft captures with REDIRECT only", AnnotationInterceptionMode, v)
	}
	initArgs, err := captureArgs(t.Meta.Annotations, i.o.ProxyUID)
	if err != nil {
		return d, err
	}
	pm, err := i.proxyMetadata(t.Meta) // dns.go
	if err != nil {
		return d, err
	}
	if dnsCapture(pm) {
		initArgs = append(initArgs, "--redirect-dns")
	}
	workload := t.WorkloadName
	if workload == "" {
		workload = workloadName(t.Meta)
	}
	i.setLabels(t.Meta, workload)
	// The projected token needs a service account name, which the
	// ServiceAccount admission plugin sets later (or never, where it is
	// off): name Kubernetes' default explicitly, it is the identity.
	if t.Spec.ServiceAccountName == "" {
		t.Spec.ServiceAccountName = firstNonEmpty(t.Spec.DeprecatedServiceAccount, "default")
	}
	probers := map[string]probe{}
	if i.rewriteProbes(t.Meta) {
		probers = rewriteProbes(t.Spec)
	}
	sidecar := i.proxyContainer(t.Meta, t.Spec, workload, probers)
	applyProxyMetadata(&sidecar, pm)
	initc := i.initContainer(t.Meta, initArgs)
	t.Spec.InitContainers = append([]corev1.Container{initc, sidecar}, t.Spec.InitContainers...)
	t.Spec.Volumes = append(t.Spec.Volumes, i.volumes()...)
	i.setAnnotations(t.Meta, t.Spec)
	return d, nil
}

func (i *Injector) rewriteProbes(meta *metav1.ObjectMeta) bool {
	if v, ok := meta.Annotations[AnnotationRewriteProbes]; ok {
		on, err := parseBool(v)
		return err != nil || on
	}
	return !i.o.NoProbeRewrite
}

// setLabels adds Istio's labels when the pod does not set them: the TLS
// mode the registry reads, and the canonical service name and revision
// (Istio's order: app.kubernetes.io/name, app, the workload's name;
// app.kubernetes.io/version, version, then the revision).
func (i *Injector) setLabels(meta *metav1.ObjectMeta, workload string) {
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	setDefault(meta.Labels, LabelTLSMode, "istio")
	setDefault(meta.Labels, LabelCanonicalName, firstNonEmpty(meta.Labels["app.kubernetes.io/name"], meta.Labels["app"], workload))
	setDefault(meta.Labels, LabelCanonicalRevision, firstNonEmpty(meta.Labels["app.kubernetes.io/version"], meta.Labels["version"], "latest"))
}

// status is the sidecar.istio.io/status annotation, Istio's shape.
type status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

func (i *Injector) setAnnotations(meta *metav1.ObjectMeta, spec *corev1.PodSpec) {
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	st, _ := json.Marshal(status{
		InitContainers: []string{InitContainerName, ProxyContainerName},
		Containers:     []string{},
		Volumes:        []string{volumeWorkloadSocket, volumeToken, volumeRootCA},
		Revision:       i.o.Revision,
	})
	meta.Annotations[AnnotationStatus] = string(st)
	if len(spec.Containers) > 0 {
		setDefault(meta.Annotations, "kubectl.kubernetes.io/default-container", spec.Containers[0].Name)
	}
	// weft-proxy serves its metrics itself on 15090 (Istio merges them on
	// the agent's 15020, which in weft serves probes only).
	setDefault(meta.Annotations, "prometheus.io/scrape", "true")
	setDefault(meta.Annotations, "prometheus.io/port", strconv.Itoa(MetricsPort))
	setDefault(meta.Annotations, "prometheus.io/path", "/stats/prometheus")
}

// workloadName is the pod's workload: its name, or for a pod of a
// ReplicaSet (generateName "web-6d4cf56db6-") the Deployment's "web".
func workloadName(meta *metav1.ObjectMeta) string {
	if meta.Name != "" && meta.GenerateName == "" {
		return meta.Name
	}
	name := strings.TrimSuffix(meta.GenerateName, "-")
	for _, o := range meta.OwnerReferences {
		if o.Kind == "ReplicaSet" {
			if j := strings.LastIndexByte(name, '-'); j > 0 {
				return name[:j]
			}
		}
	}
	return firstNonEmpty(name, meta.Name)
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok && v != "" {
		m[k] = v
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
