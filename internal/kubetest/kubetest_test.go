package kubetest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStart: the API server built from the module proxy starts, reports
// its version and stores objects.
func TestStart(t *testing.T) {
	c := Start(t, Options{})
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("server version %q, want v1.37.2", v.GitVersion)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "weft-test"}}
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "weft-test", metav1.GetOptions{})
	if err != nil || got.Name != "weft-test" {
		t.Fatalf("get: %v %v", got, err)
	}
}
