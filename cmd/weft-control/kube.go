package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/controlplane"
)

// kubeconfigNone turns Kubernetes off even in a pod.
const kubeconfigNone = "none"

// kubernetesOptions returns the Kubernetes options of the flags: the
// kubeconfig file when one is given, the in-cluster configuration (the
// pod's service account) when none is given and weft-control runs in a
// pod, else nil (file mode). "none" turns Kubernetes off.
func kubernetesOptions(kubeconfig, clusterID, audiences string) (*controlplane.KubernetesOptions, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig == kubeconfigNone:
		return nil, nil
	case kubeconfig != "":
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("running in a pod, but the in-cluster Kubernetes configuration is unusable (pass --kubeconfig, or --kubeconfig none for file mode): %w", err)
		}
	default:
		return nil, nil
	}
	var aud []string
	for _, a := range strings.Split(audiences, ",") {
		if a = strings.TrimSpace(a); a != "" {
			aud = append(aud, a)
		}
	}
	return &controlplane.KubernetesOptions{Config: cfg, ClusterID: clusterID, TokenAudiences: aud}, nil
}

// defaultNamespace is $POD_NAMESPACE (the chart sets it from the pod's
// metadata.namespace), else istio-system.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return controlplane.DefaultNamespace
}

// caInSecrets reports whether the CA keeps its material in Kubernetes
// Secrets: yes unless a signing certificate (--ca-cert) or a CA directory
// (--ca-dir, given explicitly) says files.
func caInSecrets(fs *flag.FlagSet, caCert string) bool {
	if caCert != "" {
		return false
	}
	dirSet := false
	fs.Visit(func(f *flag.Flag) { dirSet = dirSet || f.Name == "ca-dir" })
	return !dirSet
}
