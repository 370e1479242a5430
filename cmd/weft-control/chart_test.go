package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/syncbuf"
)

// TestChartCommandLine runs weft-control with the command line of the
// chart's Deployment (charts/weft, rendered as `weft install` renders it)
// against a real API server on which the chart is installed, as the
// chart's ServiceAccount (a kubeconfig that impersonates it, standing in
// for the pod's in-cluster credentials): every flag the chart passes
// parses, the mesh configuration the chart mounts is read, and the
// process becomes ready with only the chart's RBAC. Only the listen
// addresses are overridden (appended: the last flag wins), to loopback.
func TestChartCommandLine(t *testing.T) {
	kc := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	m, err := install.Install(ctx, install.Options{
		RenderOptions: install.RenderOptions{Set: []string{`meshConfig.accessLogFile=/dev/stdout`}},
		Config:        kc.Config,
		Out:           io.Discard,
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	args := containerArgs(t, m.Find("Deployment", "weft-control"))
	dir := t.TempDir()
	cm := m.Find("ConfigMap", "istio")
	mesh, _, _ := unstructured.NestedString(cm.Object, "data", "mesh")
	meshFile := filepath.Join(dir, "mesh")
	if err := os.WriteFile(meshFile, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeconfig(t, kubeconfig, kc, "system:serviceaccount:istio-system:weft-control",
		"system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated")
	httpAddr := freeAddr(t)
	args = append(args, "--xds-address=127.0.0.1:0", "--secure-address=127.0.0.1:0", "--webhook-address=127.0.0.1:0",
		"--http-address="+httpAddr, "--mesh-config="+meshFile, "--kubeconfig="+kubeconfig)
	t.Setenv("POD_NAMESPACE", "istio-system")

	var stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(args, &stderr) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + httpAddr + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("weft-control %v exited with %d:\n%s", args, code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft-control with the chart's command line not ready within 60 s:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	// The CA root went into the Secret the chart's Role allows.
	if _, err := kc.Client.CoreV1().Secrets("istio-system").Get(ctx, "istio-ca-secret", metav1.GetOptions{}); err != nil {
		t.Errorf("no CA Secret: %v\n%s", err, stderr.String())
	}
	// run stops on SIGTERM, as in a pod (its signal handler is installed
	// by now: /ready is served from Run).
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("weft-control did not stop on SIGTERM:\n%s", stderr.String())
	}
}

// containerArgs returns the args of a Deployment's first container.
func containerArgs(t *testing.T, d *unstructured.Unstructured) []string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatal("the chart's Deployment has no container")
	}
	raw, _ := cs[0].(map[string]any)["args"].([]any)
	args := make([]string, len(raw))
	for i, a := range raw {
		args[i], _ = a.(string)
	}
	if len(args) == 0 {
		t.Fatal("the chart's Deployment passes no args")
	}
	return args
}

// writeKubeconfig writes a kubeconfig for kc's administrator credentials
// that impersonates user with groups.
func writeKubeconfig(t *testing.T, path string, kc *kubetest.Cluster, user string, groups ...string) {
	t.Helper()
	c := kc.Config
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken,
		Impersonate: user, ImpersonateGroups: groups,
	}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
