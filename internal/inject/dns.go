package inject

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// AnnotationProxyConfig is Istio's per-pod ProxyConfig override
// (proxy.istio.io/config, YAML or JSON). The injector reads its
// proxyMetadata, merged over the mesh's defaultConfig.proxyMetadata
// (Options.ProxyMetadata), as Istio's injector does.
const AnnotationProxyConfig = "proxy.istio.io/config"

// MetaDNSCapture is the proxy metadata (an environment variable of the
// sidecar) that turns on Istio's DNS capture: the agent's DNS proxy
// answers on 127.0.0.1:15053 and istio-init redirects the pod's DNS
// queries there (istio-iptables --redirect-dns).
const MetaDNSCapture = "ISTIO_META_DNS_CAPTURE"

// dnsProxyAddress is where the sidecar's DNS proxy listens with DNS
// capture: REDIRECT sends locally generated packets to the loopback
// address (iptables-extensions REDIRECT), so the proxy must be there, not
// on the pod IP (weft-proxy's default), as Istio's agent listens on
// localhost:15053.
const dnsProxyAddress = "127.0.0.1:15053"

// proxyConfigAnnotation is the part of Istio's ProxyConfig the injector
// reads from the annotation.
type proxyConfigAnnotation struct {
	ProxyMetadata map[string]string `json:"proxyMetadata"`
}

// proxyMetadata merges the mesh's proxyMetadata with the pod's
// annotation (the annotation's keys win). An annotation that does not
// parse refuses the pod, naming it.
func (i *Injector) proxyMetadata(meta *metav1.ObjectMeta) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range i.o.ProxyMetadata {
		out[k] = v
	}
	if v, ok := meta.Annotations[AnnotationProxyConfig]; ok {
		var pc proxyConfigAnnotation
		if err := yaml.Unmarshal([]byte(v), &pc); err != nil {
			return nil, fmt.Errorf("metadata.annotations[%s]: want ProxyConfig YAML, such as {proxyMetadata: {%s: \"true\"}}: %w", AnnotationProxyConfig, MetaDNSCapture, err)
		}
		for k, v := range pc.ProxyMetadata {
			out[k] = v
		}
	}
	if v, ok := out[MetaDNSCapture]; ok {
		if _, err := parseBool(v); err != nil {
			return nil, fmt.Errorf("proxyMetadata[%s] (%s or the mesh's defaultConfig): %w", MetaDNSCapture, AnnotationProxyConfig, err)
		}
	}
	return out, nil
}

// dnsCapture reports whether the merged proxy metadata turns DNS capture
// on.
func dnsCapture(pm map[string]string) bool {
	on, _ := parseBool(pm[MetaDNSCapture])
	return on
}

// applyProxyMetadata sets the proxy metadata as the sidecar's environment
// (Istio's injection template does the same for every entry; names the
// injector already sets keep its value) and, with DNS capture, puts the
// DNS proxy on the address the capture rules redirect to.
func applyProxyMetadata(c *corev1.Container, pm map[string]string) {
	have := map[string]bool{}
	for _, e := range c.Env {
		have[e.Name] = true
	}
	for _, k := range sortedKeys(pm) {
		if !have[k] {
			c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: pm[k]})
		}
	}
	if dnsCapture(pm) {
		c.Args = append(c.Args, "--dns-address", dnsProxyAddress)
	}
}
