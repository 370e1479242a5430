package main

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeConfig loads --kubeconfig: a kubeconfig file, or "in-cluster" for
// the pod's service account (the KUBERNETES_SERVICE_HOST environment and
// the mounted token).
func kubeConfig(path string) (*rest.Config, error) {
	if path == "in-cluster" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig in-cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
