package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKubernetesFlags: --kubeconfig, the in-cluster fallback, "none",
// --cluster-id and --token-audience.
func TestKubernetesFlags(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	const kc = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	o, err := kubernetesOptions(kubeconfig, "east", " istio-ca, other ,")
	if err != nil || o == nil || o.Config.Host != "https://127.0.0.1:6443" || o.ClusterID != "east" || !slices.Equal(o.TokenAudiences, []string{"istio-ca", "other"}) {
		t.Fatalf("kubeconfig: %+v, %v", o, err)
	}
	if o, err := kubernetesOptions("", "", "istio-ca"); o != nil || err != nil {
		t.Errorf("outside a pod without --kubeconfig: %+v, %v; want file mode", o, err)
	}
	if o, err := kubernetesOptions("none", "", "istio-ca"); o != nil || err != nil {
		t.Errorf("none: %+v, %v; want file mode", o, err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if _, err := kubernetesOptions("", "", "istio-ca"); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in a pod without a service-account token: %v, want an in-cluster error", err)
	}
	if o, err := kubernetesOptions("none", "", "istio-ca"); o != nil || err != nil {
		t.Errorf("none in a pod: %+v, %v; want file mode", o, err)
	}

	var stderr bytes.Buffer
	code := run([]string{"--config-dir", dir, "--xds-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
		"--secure-address", "", "--kubeconfig", filepath.Join(dir, "missing")}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--kubeconfig") {
		t.Errorf("missing kubeconfig: status %d, stderr %q", code, stderr.String())
	}
}

// TestCAInSecrets: in Kubernetes mode the CA lives in Secrets unless
// --ca-cert or an explicit --ca-dir (even its default value) says files;
// --namespace defaults to $POD_NAMESPACE, else istio-system.
func TestCAInSecrets(t *testing.T) {
	tests := []struct {
		args   []string
		caCert string
		want   bool
	}{
		{nil, "", true},
		{[]string{"--ca-dir", "/var/lib/weft/ca"}, "", false},
		{nil, "/etc/ca/ca-cert.pem", false},
		{[]string{"--trust-domain", "example.com"}, "", true},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.String("ca-dir", "/default", "")
		fs.String("trust-domain", "", "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if got := caInSecrets(fs, tt.caCert); got != tt.want {
			t.Errorf("%v, --ca-cert %q: in Secrets %v, want %v", tt.args, tt.caCert, got, tt.want)
		}
	}
	t.Setenv("POD_NAMESPACE", "")
	if ns := defaultNamespace(); ns != "istio-system" {
		t.Errorf("default namespace %q, want istio-system", ns)
	}
	t.Setenv("POD_NAMESPACE", "weft")
	if ns := defaultNamespace(); ns != "weft" {
		t.Errorf("namespace with POD_NAMESPACE=weft: %q", ns)
	}
}
