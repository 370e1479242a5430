package inject

import (
	"encoding/json"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// proxyContainer is weft-proxy as a Kubernetes native sidecar: an init
// container with restartPolicy Always starts before the app's containers
// and runs beside them (KEP-753; Istio's ENABLE_NATIVE_SIDECARS). It runs
// as the capture-excluded user, so no --uid/--gid (and no root) is needed,
// and learns the pod's identity from the downward API under the variable
// names of Istio's agent, which `weft-proxy sidecar` reads.
func (i *Injector) proxyContainer(meta *metav1.ObjectMeta, spec *corev1.PodSpec, workload string, probers map[string]probe) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	args := []string{
		"--capture",
		"--discovery-address", i.o.DiscoveryAddress,
		"--ca-address", i.o.CAAddress,
		"--ca-root", mountRootCA + "/root-cert.pem",
		"--token-file", mountToken + "/istio-token",
		// weft-proxy wants the SDS socket's directory private (0700,
		// its own); an emptyDir's root is 0777, so a subdirectory.
		"--sds-socket", mountWorkloadSocket + "/weft-proxy/sds.sock",
		"--trust-domain", i.o.TrustDomain,
	}
	image := firstNonEmpty(meta.Annotations[AnnotationProxyImage], i.o.ProxyImage)
	return corev1.Container{
		Name:          ProxyContainerName,
		Image:         image,
		Command:       append([]string(nil), i.o.ProxyCommand...),
		Args:          args,
		RestartPolicy: &always,
		Env:           i.proxyEnv(meta, spec, workload, probers),
		Ports: []corev1.ContainerPort{
			{Name: "http-envoy-prom", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
		},
		// Istio's sidecar readiness: weft-proxy sidecar serves
		// /healthz/ready on INSTANCE_IP:15021 (--health-address), 200
		// once it has its configuration. A native sidecar's readiness
		// gates the pod's.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz/ready", Port: intstr.FromInt32(HealthPort),
			}},
			InitialDelaySeconds: 0, PeriodSeconds: 2, TimeoutSeconds: 3, FailureThreshold: 4,
		},
		Resources:       *i.o.Resources.DeepCopy(),
		SecurityContext: i.proxySecurity(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: volumeWorkloadSocket, MountPath: mountWorkloadSocket},
			{Name: volumeToken, MountPath: mountToken, ReadOnly: true},
			{Name: volumeRootCA, MountPath: mountRootCA, ReadOnly: true},
		},
	}
}

func (i *Injector) proxySecurity() *corev1.SecurityContext {
	uid := i.o.ProxyUID
	return &corev1.SecurityContext{
		RunAsUser:                &uid,
		RunAsGroup:               &uid,
		RunAsNonRoot:             ptr(true),
		Privileged:               ptr(false),
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// proxyEnv is the sidecar's environment: the downward API for the pod's
// identity, ISTIO_META_* node metadata, and the app probes to serve.
func (i *Injector) proxyEnv(meta *metav1.ObjectMeta, spec *corev1.PodSpec, workload string, probers map[string]probe) []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	labels, _ := json.Marshal(meta.Labels) // map keys sorted: stable output
	names := make([]string, len(spec.Containers))
	for j := range spec.Containers {
		names[j] = spec.Containers[j].Name
	}
	env := []corev1.EnvVar{
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		field("HOST_IP", "status.hostIP"),
		field("ISTIO_META_NODE_NAME", "spec.nodeName"),
		{Name: "ISTIO_METAJSON_LABELS", Value: string(labels)},
		{Name: "ISTIO_META_WORKLOAD_NAME", Value: workload},
		{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(names, ",")},
		{Name: "ISTIO_META_CLUSTER_ID", Value: i.o.ClusterID},
	}
	if ports := podPorts(spec.Containers); ports != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_POD_PORTS", Value: ports})
	}
	if len(probers) > 0 {
		b, _ := json.Marshal(probers)
		env = append(env, corev1.EnvVar{Name: "ISTIO_KUBE_APP_PROBERS", Value: string(b)})
	}
	return env
}

// podPorts is Istio's ISTIO_META_POD_PORTS: the app containers' ports as a
// JSON array ("" when there are none).
func podPorts(cs []corev1.Container) string {
	var ports []corev1.ContainerPort
	for j := range cs {
		ports = append(ports, cs[j].Ports...)
	}
	if len(ports) == 0 {
		return ""
	}
	b, _ := json.Marshal(ports)
	return string(b)
}

// initContainer is istio-init's counterpart: `weft iptables` with the
// capabilities it needs (NET_ADMIN, NET_RAW) as root, nothing else.
func (i *Injector) initContainer(meta *metav1.ObjectMeta, args []string) corev1.Container {
	root := int64(0)
	return corev1.Container{
		Name:      InitContainerName,
		Image:     i.o.InitImage,
		Command:   append([]string(nil), i.o.InitCommand...),
		Args:      args,
		Resources: *i.o.Resources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsGroup:               &root,
			RunAsNonRoot:             ptr(false),
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}

// volumes: the workload socket (SDS), the projected service-account token
// the CA authenticates (audience istio-ca, 12 h, as Istio's) and the mesh
// root the sidecar verifies the CA with.
func (i *Injector) volumes() []corev1.Volume {
	expiry := int64(43200)
	return []corev1.Volume{
		{Name: volumeWorkloadSocket, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: volumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: i.o.TokenAudience, ExpirationSeconds: &expiry, Path: "istio-token",
			}}},
		}}},
		{Name: volumeRootCA, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: i.o.RootCertConfigMap},
		}}},
	}
}

func ptr[T any](v T) *T { return &v }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
