package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDemoAppArguments(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{args: []string{"demo-app"}, wantErr: "accepts 1 arg"},
		{args: []string{"demo-app", "catalog"}, wantErr: `invalid argument "catalog"`},
		{args: []string{"demo-app", "ratings", "--fail-percent", "200"}, wantErr: "0 to 100"},
		{args: []string{"demo-app", "ratings"}, env: map[string]string{"PORT": "x"}, wantErr: "set PORT"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, stderr := weft(tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q: want 1 and %q", code, stderr, tc.wantErr)
			}
		})
	}
}

// lineWriter hands each written line to a channel.
type lineWriter struct {
	mu    sync.Mutex
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		select {
		case w.lines <- l:
		default:
		}
	}
	return len(p), nil
}

// TestDemoAppServes: `weft demo-app ratings` with PORT=0 and --fail-percent
// announces its address, serves the fault, and stops when cancelled.
func TestDemoAppServes(t *testing.T) {
	t.Setenv("PORT", "0")
	t.Setenv("VERSION", "v2")
	lw := &lineWriter{lines: make(chan string, 16)}
	cmd := newRootCommand(streams{out: io.Discard, err: lw})
	cmd.SetArgs([]string{"demo-app", "ratings", "--fail-percent", "100", "--fail-status", "503"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var addr string
	select {
	case l := <-lw.lines:
		var ok bool
		if addr, ok = strings.CutPrefix(l, "ratings-v2 listening on "); !ok {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no 'listening' line within 10 s")
	}
	resp, err := http.Get("http://" + addr + "/ratings/0")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 503 || body["servedBy"] != "ratings-v2" {
		t.Fatalf("%d %v, want 503 from ratings-v2", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo-app ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo-app did not stop within 10 s of cancellation")
	}
}
