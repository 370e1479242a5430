package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager of weft install.
const FieldManager = "weft"

// Options configure Install.
type Options struct {
	RenderOptions
	// Config reaches the API server (required).
	Config *rest.Config
	// Wait waits until the weft-control Deployment is available, at most
	// Timeout (default 5m; Timeout also bounds the CRDs' establishment).
	Wait    bool
	Timeout time.Duration
	// Out receives one line per object, as kubectl apply prints them
	// (nil: discarded).
	Out io.Writer
}

// Result is what applying one object did.
type Result string

// The results of an apply, as kubectl names them.
const (
	Created    Result = "created"
	Configured Result = "configured"
	Unchanged  Result = "unchanged"
)

// client is what Install and Uninstall talk to.
type client struct {
	server  string
	cs      kubernetes.Interface
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	out     io.Writer
	timeout time.Duration
}

func newClient(cfg *rest.Config, out io.Writer, timeout time.Duration) (*client, error) {
	if cfg == nil {
		return nil, errors.New("no Kubernetes configuration (--kubeconfig, --context)")
	}
	if out == nil {
		out = io.Discard
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	// Fail early, naming the server, when the cluster is not reachable.
	if _, err := dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("cannot reach the Kubernetes API server %s (check --kubeconfig and --context): %w", cfg.Host, err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &client{server: cfg.Host, cs: cs, dyn: dyn, mapper: mapper, out: out, timeout: timeout}, nil
}

// Install renders the chart and applies it: the namespace when missing,
// the CRDs (waiting until they are Established), then every other object
// in kindOrder by server-side apply (field manager FieldManager, forcing
// ownership of the fields the chart sets), so that running it again, with
// the same or a newer chart, is the upgrade path. Fields the chart leaves
// out (the webhooks' caBundle, which weft-control sets) are kept.
func Install(ctx context.Context, o Options) (*Manifest, error) {
	m, err := Render(o.RenderOptions)
	if err != nil {
		return nil, err
	}
	c, err := newClient(o.Config, o.Out, o.Timeout)
	if err != nil {
		return nil, err
	}
	if err := c.ensureNamespace(ctx, m.Namespace); err != nil {
		return m, err
	}
	for _, crd := range m.CRDs {
		if _, err := c.apply(ctx, crd); err != nil {
			return m, err
		}
	}
	if err := c.waitEstablished(ctx, m.CRDs); err != nil {
		return m, err
	}
	c.mapper.Reset() // the new kinds are served now
	for _, obj := range m.Objects {
		if _, err := c.apply(ctx, obj); err != nil {
			return m, err
		}
	}
	if o.Wait {
		if err := c.waitDeployment(ctx, m.Namespace, "weft-control"); err != nil {
			return m, err
		}
	}
	return m, nil
}

func (c *client) ensureNamespace(ctx context.Context, ns string) error {
	_, err := c.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return c.apiError(err, "get", "namespaces", "", ns)
	}
	_, err = c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return c.apiError(err, "create", "namespaces", "", ns)
	}
	fmt.Fprintf(c.out, "namespace/%s created\n", ns)
	return nil
}

// resource maps obj's kind to its resource client.
func (c *client) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the API server %s does not serve %s: %w", describe(obj), c.server, gvk, err)
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace()), mapping, nil
	}
	return c.dyn.Resource(mapping.Resource), mapping, nil
}

// apply server-side applies obj and prints what it did: created when it
// did not exist, unchanged when its resourceVersion did not move.
func (c *client) apply(ctx context.Context, obj *unstructured.Unstructured) (Result, error) {
	ri, mapping, err := c.resource(obj)
	if err != nil {
		return "", err
	}
	res := mapping.Resource.GroupResource().String()
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return "", c.apiError(err, "get", res, obj.GetNamespace(), obj.GetName())
	}
	after, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		verb := "patch"
		if before == nil {
			verb = "create"
		}
		return "", c.apiError(err, verb, res, obj.GetNamespace(), obj.GetName())
	}
	r := Configured
	switch {
	case before == nil:
		r = Created
	case before.GetResourceVersion() == after.GetResourceVersion():
		r = Unchanged
	}
	fmt.Fprintf(c.out, "%s %s\n", describe(obj), r)
	return r, nil
}

// apiError says what failed and, for the common causes, what to do.
func (c *client) apiError(err error, verb, resource, ns, name string) error {
	where := resource + " " + name
	if ns != "" {
		where = resource + " " + ns + "/" + name
	}
	switch {
	case apierrors.IsForbidden(err):
		scope := "cluster-wide"
		if ns != "" {
			scope = "in namespace " + ns
		}
		return fmt.Errorf("%s: not allowed to %s %s %s: installing weft needs cluster-admin-like rights (use another --context or ask for them): %w", where, verb, resource, scope, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server %s refused the credentials of the kubeconfig: %w", where, c.server, err)
	case apierrors.ReasonForError(err) == metav1.StatusReasonUnknown && !isStatus(err):
		return fmt.Errorf("%s %s: cannot reach the Kubernetes API server %s: %w", verb, where, c.server, err)
	}
	return fmt.Errorf("%s %s: %w", verb, where, err)
}

func isStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s)
}

// waitEstablished waits until every CRD has the Established condition.
func (c *client) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) error {
	gvr := crdGVR
	for _, crd := range crds {
		name := crd.GetName()
		var last string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, c.timeout, true, func(ctx context.Context) (bool, error) {
			u, err := c.dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			ok, msg := condition(u, "Established")
			last = msg
			return ok, nil
		})
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s is not Established after %s (%s): kubectl get crd %s -o yaml shows why", name, c.timeout, last, name)
		}
	}
	return nil
}

// waitDeployment waits until the Deployment has all its replicas updated
// and available.
func (c *client) waitDeployment(ctx context.Context, ns, name string) error {
	var state string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, c.timeout, true, func(ctx context.Context) (bool, error) {
		d, err := c.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			state = err.Error()
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		state = fmt.Sprintf("%d of %d replicas updated, %d available", st.UpdatedReplicas, want, st.AvailableReplicas)
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas >= want && st.Replicas == want, nil
	})
	if err != nil {
		return fmt.Errorf("Deployment %s/%s is not available after %s (%s): look at kubectl -n %s describe deployment %s, kubectl -n %s get pods -l app=weft-control and kubectl -n %s logs deployment/%s",
			ns, name, c.timeout, state, ns, name, ns, ns, name)
	}
	fmt.Fprintf(c.out, "deployment.apps/%s available\n", name)
	return nil
}

// condition reports whether obj's status condition typ is True, with its
// message.
func condition(obj *unstructured.Unstructured, typ string) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		msg, _ := m["message"].(string)
		return m["status"] == "True", msg
	}
	return false, "no " + typ + " condition yet"
}
