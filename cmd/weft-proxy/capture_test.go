package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestSidecarCaptureFlags: --capture puts Istio's INTERCEPTION_MODE in the
// node metadata; --uid/--gid are accepted as root only.
func TestSidecarCaptureFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runSidecar([]string{"--name", "app-1", "--capture", "--print-bootstrap", "--ca-dir="}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "INTERCEPTION_MODE: REDIRECT") {
		t.Errorf("bootstrap lacks INTERCEPTION_MODE:\n%s", stdout.String())
	}
	o, err := parseSidecar([]string{"--name", "app-1", "--uid", "1337", "--gid", "1337", "--ca-dir="}, nil, io.Discard)
	if os.Geteuid() == 0 {
		if err != nil || o.captureOpts.uid != 1337 || o.captureOpts.gid != 1337 || o.meta[interceptionModeKey] != "" {
			t.Errorf("as root: %+v, %v", o, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Errorf("not root: err %v, want needs root", err)
	}
}
