package kube

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

// controlName is weft-control's Service name, which the injected sidecars
// dial for the CA (inject.Options' default); the pods' hosts files map it
// to the root namespace's address, as kube-dns would map it to the
// Service's ClusterIP.
const controlName = "weft-control.istio-system.svc"

// mesh is the API server and weft-control.
type mesh struct {
	cluster *kubetest.Cluster
	client  kubernetes.Interface
	dyn     dynamic.Interface
	cp      *controlplane.ControlPlane
	log     *recorder
}

// startMesh follows docs/KUBERNETES.md on the test API server: `weft
// install` (internal/install: the chart's CRDs, RBAC, webhooks; its
// webhook.url value points the API server at weft-control's webhook port
// on loopback, as for a control plane outside the cluster), then
// weft-control in Kubernetes mode as the chart's ServiceAccount
// (impersonated: only the chart's RBAC), its CA root in the Secret
// istio-ca-secret. xDS and the secure port (CA) listen on the root
// namespace's address ip, where the pods reach them; sidecar injection is
// on, its commands the binaries in bin.
func startMesh(t *testing.T, ip, bin string) *mesh {
	t.Helper()
	kc := kubetest.Start(t, kubetest.Options{})
	rec := &recorder{}
	// Istio's ports on the test network's address: the chart's gateway and
	// the injected sidecars dial weft-control.istio-system.svc:15010 and
	// :15012, which the pods' hosts files map to ip (kube-dns would answer
	// the Service's ClusterIP).
	xdsPort, secPort := 15010, 15012
	webhook := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	ctx := context.Background()
	if _, err := install.Install(ctx, install.Options{
		RenderOptions: install.RenderOptions{Set: []string{"webhook.url=https://" + webhook}},
		Config:        kc.Config,
		Out:           io.Discard,
	}); err != nil {
		t.Fatalf("weft install: %v", err)
	}
	sa := rest.CopyConfig(kc.Config)
	sa.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:istio-system:weft-control",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"},
	}
	cp, err := controlplane.New(controlplane.Options{
		Kubernetes:     &controlplane.KubernetesOptions{Config: sa, Namespace: "istio-system", CASecrets: true},
		XDSAddress:     net.JoinHostPort(ip, strconv.Itoa(xdsPort)),
		SecureAddress:  net.JoinHostPort(ip, strconv.Itoa(secPort)),
		HTTPAddress:    "127.0.0.1:0",
		WebhookAddress: webhook,
		CA:             ca.Options{Logger: slog.New(rec)},
		Injection: &inject.Options{
			ProxyImage:   "ghcr.io/weftmesh/weft:latest",
			ProxyCommand: []string{filepath.Join(bin, "weft-proxy"), "sidecar"},
			InitCommand:  []string{filepath.Join(bin, "weft"), "iptables"},
		},
		Debounce: 50 * time.Millisecond,
		Logger:   slog.New(rec),
	})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weft-control: %v", err)
		}
		if t.Failed() {
			t.Logf("weft-control's log:\n%s", rec.String())
		}
	})
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{cluster: kc, client: kc.Client, dyn: dyn, cp: cp, log: rec}
	m.waitInjectorTrusted(t)
	return m
}

// waitInjectorTrusted waits until weft-control made the mesh root the
// injector webhook's caBundle (before that the API server cannot call it,
// and pods in labelled namespaces are refused: failurePolicy Fail).
func (m *mesh) waitInjectorTrusted(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	root := m.cp.CA().RootPEM()
	deadline := time.Now().Add(30 * time.Second)
	for {
		wh, err := m.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "weft-sidecar-injector", metav1.GetOptions{})
		if err == nil && len(wh.Webhooks) > 0 && bytes.Equal(wh.Webhooks[0].ClientConfig.CABundle, root) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft-control did not patch the injector webhook's caBundle within 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// freePort returns a port of ip that was free a moment ago (the chart's
// webhook URL and the injector's addresses need them before weft-control
// binds them).
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// applyIstio creates the Istio objects of a YAML stream in namespace ns
// with the dynamic client (kubectl apply's path for custom resources).
func applyIstio(ctx context.Context, t *testing.T, m *mesh, ns, stream string) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return
			}
			t.Fatalf("decoding Istio YAML: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		gvk := u.GroupVersionKind()
		gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
		if _, err := m.dyn.Resource(gvr).Namespace(ns).Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s %s: %v", gvk.Kind, u.GetName(), err)
		}
	}
}

// issued returns the identities the CA issued workload certificates for
// (from its log: "issued a workload certificate", identity=...).
func (m *mesh) issued() map[string]bool {
	ids := map[string]bool{}
	m.log.each(func(msg string, attrs map[string]string) {
		if msg == "issued a workload certificate" {
			ids[attrs["identity"]] = true
		}
	})
	return ids
}

// recorder is a slog.Handler keeping weft-control's records (shown when
// the test fails; read by issued).
type recorder struct {
	mu      sync.Mutex
	records []record
	attrs   []slog.Attr
}

type record struct {
	msg   string
	attrs map[string]string
	text  string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	add := func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	r.records = append(r.records, record{msg: rec.Message, attrs: attrs, text: b.String()})
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &recorderView{r: r, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) each(f func(string, map[string]string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		f(rec.msg, rec.attrs)
	}
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, rec := range r.records {
		b.WriteString(rec.text + "\n")
	}
	return b.String()
}

// recorderView is a recorder with attributes (slog's WithAttrs).
type recorderView struct {
	r     *recorder
	attrs []slog.Attr
}

func (v *recorderView) Enabled(context.Context, slog.Level) bool { return true }

func (v *recorderView) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(v.attrs...)
	return v.r.Handle(ctx, rec)
}

func (v *recorderView) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorderView{r: v.r, attrs: append(append([]slog.Attr(nil), v.attrs...), as...)}
}

func (v *recorderView) WithGroup(string) slog.Handler { return v }
