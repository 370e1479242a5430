package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallDryRun: --dry-run prints the rendered chart, CRDs first,
// with the values applied, and reaches no cluster (none is configured).
func TestInstallDryRun(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	code, out, errOut := weft("install", "--dry-run", "-n", "mesh", "--set", "replicaCount=2", "--set", "webhook.url=https://127.0.0.1:1234")
	if code != 0 {
		t.Fatalf("status %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n") {
		t.Errorf("the stream does not start with a CRD:\n%.300s", out)
	}
	for _, want := range []string{"kind: Deployment", "kind: PodDisruptionBudget", "namespace: mesh", "url: https://127.0.0.1:1234/validate", "url: https://127.0.0.1:1234/inject", "replicas: 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q", want)
		}
	}
	if strings.Index(out, "kind: MutatingWebhookConfiguration") < strings.Index(out, "kind: Deployment") {
		t.Error("the webhooks come before the Deployment")
	}
}

// TestInstallErrors: each failure names what to fix.
func TestInstallErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	kubeconfig := filepath.Join(t.TempDir(), "config")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://" + addr + "\ncontexts:\n- name: gone\n  context:\n    cluster: c\n    user: u\ncurrent-context: gone\nusers:\n- name: u\n  user:\n    token: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "--dry-run", "--set", "replcaCount=2"}, `the chart has no value "replcaCount"`},
		{[]string{"install", "--dry-run", "--set", "replicaCount"}, "--set replicaCount"},
		{[]string{"install", "-y", "--kubeconfig", kubeconfig}, "cannot reach the Kubernetes API server https://" + addr},
		{[]string{"uninstall", "-y", "--kubeconfig", kubeconfig}, "cannot reach the Kubernetes API server https://" + addr},
		{[]string{"install", "-y", "--kubeconfig", kubeconfig, "--context", "other"}, `context "other"`},
	} {
		code, _, errOut := weft(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("weft %s: status %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// TestInstallAsks: without -y, install asks, and anything but yes
// installs nothing.
func TestInstallAsks(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    token: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	cmd := newRootCommand(streams{out: &out, err: &errb})
	cmd.SetIn(strings.NewReader("n\n"))
	cmd.SetArgs([]string{"install", "--kubeconfig", kubeconfig})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "pass -y") || !strings.Contains(out.String(), `context "ctx"`) {
		t.Errorf("install answered no: %v, asked %q", err, out.String())
	}
}
