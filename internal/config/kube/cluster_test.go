package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/kubetest"
)

// skipWebhookLabel marks test objects that bypass the webhook (its
// objectSelector excludes them): they stand for objects stored while the
// webhook was not installed or not reachable.
const skipWebhookLabel = "weft.dev/test-skip-webhook"

// waitTimeout bounds every wait on the API server or the source.
const waitTimeout = 20 * time.Second

// cluster is the test API server with the CRDs and the webhook, shared
// by the subtests of TestCluster.
type cluster struct {
	*kubetest.Cluster
	dyn dynamic.Interface
}

// startCluster starts the API server with charts/weft/crds and the
// validating webhook (served by this test with Webhook), and a namespace
// "shop".
func startCluster(t *testing.T) *cluster {
	wh := ValidatingWebhookConfiguration(WebhookConfigOptions{})
	wh.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: skipWebhookLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
	}}
	kc := kubetest.Start(t, kubetest.Options{
		CRDDirs:  []string{crdDir},
		Webhooks: envtest.WebhookInstallOptions{ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{wh}},
	})
	serveWebhook(t, kc.Env.WebhookInstallOptions)
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if _, err := kc.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &cluster{Cluster: kc, dyn: dyn}
}

// serveWebhook serves Webhook where envtest pointed the API server, with
// envtest's certificate. Every path is served: envtest's URL is
// "https://host:port/" + the service path.
func serveWebhook(t *testing.T, o envtest.WebhookInstallOptions) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(o.LocalServingCertDir, "tls.crt"), filepath.Join(o.LocalServingCertDir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.LocalServingHost, strconv.Itoa(o.LocalServingPort)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Webhook{}, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("webhook server: %v", err)
		}
	})
}

// object parses a YAML object.
func object(t *testing.T, text string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// gvrOf is the resource of an object, at its apiVersion.
func gvrOf(t *testing.T, u *unstructured.Unstructured) schema.GroupVersionResource {
	t.Helper()
	r, ok := ResourceOf(config.Kind(u.GetKind()))
	if !ok {
		t.Fatalf("no resource for %s", u.GetKind())
	}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		t.Fatal(err)
	}
	return gv.WithResource(r.Plural)
}

// apply creates or updates an object (the update keeps the stored
// resourceVersion, as kubectl apply does for the whole object).
func (c *cluster) apply(t *testing.T, text string) error {
	t.Helper()
	u := object(t, text)
	ri := c.dyn.Resource(gvrOf(t, u)).Namespace(u.GetNamespace())
	ctx := context.Background()
	cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if err != nil {
		_, err = ri.Create(ctx, u, metav1.CreateOptions{})
		return err
	}
	u.SetResourceVersion(cur.GetResourceVersion())
	_, err = ri.Update(ctx, u, metav1.UpdateOptions{})
	return err
}

// get reads an object at the storage version.
func (c *cluster) get(t *testing.T, kind config.Kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	r, _ := ResourceOf(kind)
	u, err := c.dyn.Resource(r.GVR()).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, waitTimeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting %s for %s", waitTimeout, what)
	}
}

// TestCluster runs the subtests against one API server (starting one
// takes seconds).
func TestCluster(t *testing.T) {
	c := startCluster(t)
	t.Run("webhook", func(t *testing.T) { testWebhook(t, c) })
	t.Run("source", func(t *testing.T) { testSource(t, c) })
}

const (
	// seReviews defines the host, so that the cross-object checks have
	// nothing to warn about.
	seReviews = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
`
	drReviews = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`
	// vsReviews is a VirtualService routing to a subset with a timeout
	// (%s: subset, %s: timeout), written at v1alpha3 as older Istio YAML.
	vsReviews = `
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: shop%s}
spec:
  hosts: [reviews]
  http:
  - timeout: %s
    route:
    - destination: {host: reviews, subset: %s}
      weight: %d
`
)

// vs renders vsReviews.
func vs(labels, timeout, subset string, weight int) string {
	return fmt.Sprintf(vsReviews, labels, timeout, subset, weight)
}

// testWebhook: through the API server, an invalid object is refused with
// weft's message and field path; a valid one is stored.
func testWebhook(t *testing.T, c *cluster) {
	bad := strings.Replace(vs("", "5s", "v1", -1), "name: reviews", "name: bad", 1)
	err := c.apply(t, bad)
	if err == nil {
		t.Fatal("an invalid VirtualService was stored")
	}
	for _, want := range []string{`admission webhook "validation.weft.dev" denied the request`, "weft: invalid VirtualService shop/bad", "spec.http[0].route[0].weight: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want %q in it", err, want)
		}
	}
	typo := "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: typo, namespace: shop}\nspec: {acton: DENY}\n"
	if err := c.apply(t, typo); err == nil || !strings.Contains(err.Error(), "spec.acton: unknown field") {
		t.Errorf("AuthorizationPolicy with a typo: %v, want spec.acton: unknown field", err)
	}
	good := strings.Replace(vs("", "5s", "v1", 100), "name: reviews", "name: good", 1)
	if err := c.apply(t, good); err != nil {
		t.Fatalf("a valid VirtualService was refused: %v", err)
	}
	r, _ := ResourceOf(config.VirtualService)
	if err := c.dyn.Resource(r.GVR()).Namespace("shop").Delete(context.Background(), "good", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// recorder collects a source's OnError reports.
type recorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *recorder) add(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

// timeoutOf returns the first HTTP route's timeout of the VirtualService
// shop/reviews in force ("" when absent).
func timeoutOf(store *config.Store) string {
	obj, ok := store.Get(config.Key{Kind: config.VirtualService, Namespace: "shop", Name: "reviews"})
	if !ok {
		return ""
	}
	return obj.Spec.(*networking.VirtualService).GetHttp()[0].GetTimeout().AsDuration().String()
}

// messages returns the status.validationMessages of an object as
// "LEVEL message" lines.
func messages(u *unstructured.Unstructured) []string {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
	var out []string
	for _, m := range list {
		mm, _ := m.(map[string]any)
		out = append(out, fmt.Sprintf("%v %v", mm["level"], mm["message"]))
	}
	return out
}

// testSource: objects applied to the cluster reach the store, edits are
// seen live, an invalid edit keeps the last good version and shows its
// problems in the object's status (cleared once fixed), status writes do
// not loop, and a deleted object leaves the store.
func testSource(t *testing.T, c *cluster) {
	store := config.NewStore()
	var rec recorder
	src, err := New(Options{Config: c.Config, Store: store, Namespace: "shop", Debounce: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond, OnError: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{seReviews, drReviews} {
		if err := c.apply(t, obj); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Sync loaded what was there (and the webhook test's object).
	if _, ok := store.Get(config.Key{Kind: config.DestinationRule, Namespace: "shop", Name: "reviews"}); !ok {
		t.Fatalf("after Sync, the store holds %d objects, not the DestinationRule", len(store.List()))
	}

	if err := c.apply(t, vs("", "5s", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the VirtualService in the store", func() bool { return timeoutOf(store) == "5s" })
	if err := c.apply(t, vs("", "7s", "v2", 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the edit in the store", func() bool { return timeoutOf(store) == "7s" })

	// An edit the webhook accepts (each object is valid alone) but that
	// refers to a subset no DestinationRule defines: rejected by the
	// cross-object checks, 7s stays in force, the status says why.
	// (Labelled to bypass the webhook from now on: for an update, the
	// API server calls it when the old or the new object matches.)
	skip := ", labels: {" + skipWebhookLabel + ": \"true\"}"
	if err := c.apply(t, vs(skip, "9s", "v9", 100)); err != nil {
		t.Fatal(err)
	}
	var status []string
	waitFor(t, "the subset problem in the status", func() bool {
		status = messages(c.get(t, config.VirtualService, "shop", "reviews"))
		return len(status) == 2
	})
	if !strings.HasPrefix(status[0], "ERROR spec.http[0].route[0].destination.subset: ") || !strings.HasPrefix(status[1], "INFO ") {
		t.Errorf("status %q, want the subset error and the last-good note", status)
	}
	if got := timeoutOf(store); got != "7s" {
		t.Errorf("after an invalid edit, timeout %s in force, want the last good 7s", got)
	}

	// An invalid spec stored past the webhook (labelled to bypass it):
	// its field path appears in the status.
	if err := c.apply(t, vs(skip, "11s", "v1", -5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the weight problem in the status", func() bool {
		status = messages(c.get(t, config.VirtualService, "shop", "reviews"))
		return len(status) > 0 && strings.HasPrefix(status[0], "ERROR spec.http[0].route[0].weight: ")
	})
	if got := timeoutOf(store); got != "7s" {
		t.Errorf("after an invalid edit, timeout %s in force, want the last good 7s", got)
	}

	// Fixed: applied, and the messages are cleared.
	if err := c.apply(t, vs("", "13s", "v1", 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fix in force and the status cleared", func() bool {
		return timeoutOf(store) == "13s" && len(messages(c.get(t, config.VirtualService, "shop", "reviews"))) == 0
	})

	// No status loop: after another object's change is applied (a
	// reload that sees every object), the VirtualService was not written
	// again.
	rv := c.get(t, config.VirtualService, "shop", "reviews").GetResourceVersion()
	other := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: shop}\nspec: {hosts: [ext.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}\n"
	if err := c.apply(t, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ServiceEntry in the store", func() bool {
		_, ok := store.Get(config.Key{Kind: config.ServiceEntry, Namespace: "shop", Name: "ext"})
		return ok
	})
	if got := c.get(t, config.VirtualService, "shop", "reviews").GetResourceVersion(); got != rv {
		t.Errorf("the VirtualService was written again (resourceVersion %s, then %s)", rv, got)
	}

	// Deleted: gone from the store.
	r, _ := ResourceOf(config.VirtualService)
	if err := c.dyn.Resource(r.GVR()).Namespace("shop").Delete(context.Background(), "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion in the store", func() bool { return timeoutOf(store) == "" })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) != 0 {
		t.Errorf("watch problems: %v", rec.errs)
	}
}
