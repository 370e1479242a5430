package install

import (
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
)

// RootCertConfigMap is the ConfigMap weft-control publishes the mesh root
// in, in every namespace, labelled RootCertLabel=true (Istio's names).
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertLabel     = "istio.io/config"
	// CASecret is the Secret weft-control keeps the generated mesh root in
	// (Istio's name), in the release namespace.
	CASecret = "istio-ca-secret"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// UninstallOptions configure Uninstall.
type UninstallOptions struct {
	// Namespace is the release namespace (default DefaultNamespace).
	Namespace string
	// Config reaches the API server (required).
	Config *rest.Config
	// Purge also deletes the CRDs (and with them every Istio object of the
	// cluster) and the CA Secret CASecret.
	Purge bool
	// Out receives one line per object (nil: discarded).
	Out io.Writer
}

// Uninstall deletes what Install applies (every object the chart can
// render, webhooks first so that no pod creation waits on a webhook that
// is going away; NotFound is not an error) and the RootCertConfigMap
// ConfigMaps weft-control published. The CRDs, the users' Istio objects,
// the CA Secret, a user's cacerts Secret and the namespace are kept
// unless Purge (which deletes the CRDs and CASecret; cacerts and the
// namespace are the user's).
func Uninstall(ctx context.Context, o UninstallOptions) error {
	// Every object the chart can render: the injector is on by default,
	// and two replicas add the PodDisruptionBudget.
	m, err := Render(RenderOptions{Namespace: o.Namespace, Set: []string{"replicaCount=2", "sidecarInjector.enabled=true"}})
	if err != nil {
		return err
	}
	c, err := newClient(o.Config, o.Out, time.Minute)
	if err != nil {
		return err
	}
	for i := len(m.Objects) - 1; i >= 0; i-- {
		if err := c.delete(ctx, m.Objects[i]); err != nil {
			return err
		}
	}
	if err := c.deleteRootCerts(ctx); err != nil {
		return err
	}
	if !o.Purge {
		fmt.Fprintf(c.out, "kept: the %d CustomResourceDefinitions and the Istio objects in the cluster, Secret %s/%s (the mesh root: a reinstall keeps the workloads' trust), the namespace %s and any cacerts Secret; weft uninstall --purge deletes the CRDs (and so every Istio object) and the CA Secret; kubectl delete namespace %s deletes the namespace\n",
			len(m.CRDs), m.Namespace, CASecret, m.Namespace, m.Namespace)
		return nil
	}
	secret := &unstructured.Unstructured{}
	secret.SetAPIVersion("v1")
	secret.SetKind("Secret")
	secret.SetNamespace(m.Namespace)
	secret.SetName(CASecret)
	if err := c.delete(ctx, secret); err != nil {
		return err
	}
	for _, crd := range m.CRDs {
		c.waitInstancesListable(ctx, crd)
		if err := c.delete(ctx, crd); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.out, "kept: the namespace %s and any cacerts Secret in it (kubectl delete namespace %s)\n", m.Namespace, m.Namespace)
	return nil
}

// delete deletes obj, printing "deleted" or "not found".
func (c *client) delete(ctx context.Context, obj *unstructured.Unstructured) error {
	ri, mapping, err := c.resource(obj)
	if err != nil {
		return err
	}
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(c.out, "%s not found\n", describe(obj))
	case err != nil:
		return c.apiError(err, "delete", mapping.Resource.GroupResource().String(), obj.GetNamespace(), obj.GetName())
	default:
		fmt.Fprintf(c.out, "%s deleted\n", describe(obj))
	}
	return nil
}

// deleteRootCerts deletes the RootCertConfigMap ConfigMaps of every
// namespace (only those with the label and the name: a user's ConfigMap
// labelled istio.io/config stays).
func (c *client) deleteRootCerts(ctx context.Context) error {
	api := c.cs.CoreV1().ConfigMaps(metav1.NamespaceAll)
	list, err := api.List(ctx, metav1.ListOptions{LabelSelector: RootCertLabel + "=true", FieldSelector: "metadata.name=" + RootCertConfigMap})
	if err != nil {
		return c.apiError(err, "list", "configmaps", "", RootCertConfigMap)
	}
	for _, cm := range list.Items {
		err := c.cs.CoreV1().ConfigMaps(cm.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return c.apiError(err, "delete", "configmaps", cm.Namespace, cm.Name)
		}
		fmt.Fprintf(c.out, "configmap/%s deleted (namespace %s)\n", cm.Name, cm.Namespace)
	}
	return nil
}

// waitInstancesListable waits (up to a minute) until the instances of crd
// can be listed. The API server's CRD finalizer lists them before it lets
// the CRD go; a CRD applied moments ago may still have its storage
// initializing ("storage is (re)initializing"), and each failed attempt
// backs the finalizer off further (minutes), leaving the CRD Terminating.
// A CRD that is not served (already gone) returns at once.
func (c *client) waitInstancesListable(ctx context.Context, crd *unstructured.Unstructured) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	version := ""
	for _, v := range versions {
		if vm, ok := v.(map[string]any); ok && vm["storage"] == true {
			version, _ = vm["name"].(string)
		}
	}
	if group == "" || plural == "" || version == "" {
		return
	}
	ri := c.dyn.Resource(schema.GroupVersionResource{Group: group, Version: version, Resource: plural})
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := ri.List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil || apierrors.IsNotFound(err), nil
	})
}
