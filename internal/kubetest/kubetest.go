// Package kubetest starts a real Kubernetes API server for tests: the
// kube-apiserver and etcd that hack/kube/build.sh builds from the Go module
// proxy (cached between runs under the user's cache directory), run on
// loopback through controller-runtime's envtest. No controller-manager and
// no kubelet run: tests create the EndpointSlices they need, and Pods never
// start (their creation still goes through admission webhooks).
package kubetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is a running API server.
type Cluster struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface
	// Env is the envtest environment (its WebhookInstallOptions hold the
	// webhook server's address and certificates when Options.Webhooks was
	// set).
	Env *envtest.Environment
}

// Options configure Start.
type Options struct {
	// CRDDirs are directories of CustomResourceDefinition manifests to
	// install before Start returns.
	CRDDirs []string
	// Webhooks are admission webhook configurations to install; envtest
	// points them at a local server (LocalServingHost/Port/CertDir in the
	// options after Start) that the test runs.
	Webhooks envtest.WebhookInstallOptions
}

var (
	buildOnce sync.Once
	assets    string
	buildErr  error
)

// Assets returns the directory holding kube-apiserver and etcd, building
// them on first use (hack/kube/build.sh; minutes when cold, a second when
// cached).
func Assets() (string, error) {
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", "kube", "build.sh"))
		cmd.Dir = root
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("hack/kube/build.sh: %v\n%s", err, tail(errb.String()))
			return
		}
		assets = strings.TrimSpace(out.String())
	})
	return assets, buildErr
}

// Start builds (or finds) the binaries and starts the API server; the
// test's cleanup stops it.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	dir, err := Assets()
	if err != nil {
		t.Fatalf("building the test API server: %v", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     o.CRDDirs,
		ErrorIfCRDPathMissing: len(o.CRDDirs) > 0,
		WebhookInstallOptions: o.Webhooks,
	}
	// Loopback only; v1.37 refuses a loopback advertise address unless the
	// endpoint reconciler is off.
	env.ControlPlane.GetAPIServer().Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the test API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the test API server: %v", err)
		}
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{Config: cfg, Client: client, Env: env}
}

// repoRoot finds the main module's directory from the working directory
// (go test runs in the package's directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/weftmesh/weft\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("kubetest: no github.com/weftmesh/weft go.mod above the working directory")
		}
		dir = parent
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
