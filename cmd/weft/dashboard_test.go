package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeControlPlane serves a page at /dashboard/ as weft-control does.
func fakeControlPlane(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<!doctype html>")) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestDashboardURL: host:port or a URL, with or without the path.
func TestDashboardURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:15014", "http://127.0.0.1:15014/dashboard/"},
		{"http://10.0.0.5:15014/", "http://10.0.0.5:15014/dashboard/"},
		{"https://cp.example.com/dashboard", "https://cp.example.com/dashboard/"},
		{"localhost:8080/dashboard/", "http://localhost:8080/dashboard/"},
	}
	for _, tt := range tests {
		if got := dashboardURL(tt.in); got != tt.want {
			t.Errorf("dashboardURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDashboardNoBrowser prints the URL of a control plane that answers.
func TestDashboardNoBrowser(t *testing.T) {
	addr := fakeControlPlane(t)
	code, out, errOut := weft("dashboard", "--no-browser", "--control-plane-address", addr)
	if code != 0 || out != "http://"+addr+"/dashboard/\n" || errOut != "" {
		t.Fatalf("status %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestDashboardOpensBrowser: the URL goes to the opener; a failing opener
// is reported but the command succeeds (the URL was printed).
func TestDashboardOpensBrowser(t *testing.T) {
	addr := fakeControlPlane(t)
	for _, fail := range []bool{false, true} {
		var opened []string
		open := func(u string) error {
			opened = append(opened, u)
			if fail {
				return errors.New("xdg-open: not found")
			}
			return nil
		}
		var out, errOut bytes.Buffer
		cmd := newDashboardCommandWith(streams{out: &out, err: &errOut}, open)
		cmd.SetArgs([]string{"--control-plane-address", addr})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		url := "http://" + addr + "/dashboard/"
		if len(opened) != 1 || opened[0] != url || out.String() != url+"\n" {
			t.Errorf("fail=%v: opened %v, stdout %q", fail, opened, out.String())
		}
		if fail != strings.Contains(errOut.String(), "could not open a browser (xdg-open: not found): open "+url+" yourself") {
			t.Errorf("fail=%v: stderr %q", fail, errOut.String())
		}
	}
}

// TestDashboardControlPlaneDown: a clear error, status 1, no browser.
func TestDashboardControlPlaneDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, errOut := weft("dashboard", "--control-plane-address", addr)
	if code != 1 || out != "" || !strings.Contains(errOut, "weft-control does not answer at http://"+addr+"/dashboard/") ||
		!strings.Contains(errOut, "--control-plane-address") {
		t.Fatalf("status %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Something else on the port: not weft-control.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	code, _, errOut = weft("dashboard", "--no-browser", "--control-plane-address", srv.URL)
	if code != 1 || !strings.Contains(errOut, "404 Not Found: is this weft-control's --http-address?") {
		t.Fatalf("status %d, stderr %q", code, errOut)
	}
}
