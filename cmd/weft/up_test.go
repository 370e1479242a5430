package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/localmesh"
	"github.com/weftmesh/weft/internal/syncbuf"
)

// TestMain lets the test binary play two more roles, chosen by
// WEFT_TEST_ROLE: "weft" runs the CLI (so that the end-to-end test runs
// `weft up` as a process of its own, and its workloads' command "weft" is
// this binary), "app" runs the small workload of upApp.
func TestMain(m *testing.M) {
	switch os.Getenv("WEFT_TEST_ROLE") {
	case "weft":
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	case "app":
		os.Exit(upApp())
	}
	os.Exit(m.Run())
}

// upApp is a workload: on 127.0.0.1:$PORT, "/" answers with APP_NAME and
// the x-forwarded-client-cert its sidecar added; "/call?url=U" GETs U
// through the sidecar (HTTP_PROXY) and answers with what came back. It
// exits on SIGTERM, as a well-behaved app does.
func upApp() int {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app=%s xfcc=%s\n", os.Getenv("APP_NAME"), r.Header.Get("X-Forwarded-Client-Cert"))
	})
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(r.URL.Query().Get("url")) // HTTP_PROXY: through the sidecar
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("listening on", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		return 1
	}
	return 0
}

// upManifest is the mesh of TestUp: hello (the server) and sleep (a
// client that also serves /call), the gateway exposing hello.
const upManifest = `apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: hello}
spec:
  service: hello
  command: [weft]
  env: {WEFT_TEST_ROLE: app, APP_NAME: hello}
  ports: [{name: http, number: 8080}]
  labels: {app: hello}
  serviceAccount: hello
---
apiVersion: local.weft.dev/v1alpha1
kind: Workload
metadata: {name: sleep}
spec:
  service: sleep
  command: [weft]
  env: {WEFT_TEST_ROLE: app, APP_NAME: sleep}
  ports: [{name: http, number: 9000}]
  labels: {app: sleep}
  serviceAccount: sleep
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: %d, name: http, protocol: HTTP}, hosts: ["*"], bind: 127.0.0.1}]
`

// upRoute is the VirtualService that exposes hello, tagging responses.
const upRoute = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: hello, port: {number: 8080}}}]
    headers: {response: {set: {x-version: %s}}}
`

// upSubsetRoute is upRoute with the destination's subset "all", which a
// DestinationRule of the directory defines: applied alone it would fail
// the cross-object checks, so `weft up` must check it with the directory.
const upSubsetRoute = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: hello, port: {number: 8080}, subset: all}}]
    headers: {response: {set: {x-version: %s}}}
`

const upDestinationRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello}
spec:
  host: hello
  subsets: [{name: all, labels: {app: hello}}]
`

// TestUp runs `weft up` end to end, as a process: it reports what runs
// where; the gateway reaches hello over mTLS; sleep calls hello through
// its sidecar and hello sees sleep's SPIFFE identity; an edited
// VirtualService applies live, and so does `weft apply`; SIGINT stops
// everything with status 0 and no workload process left.
func TestUp(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	gwPort := freeTCPPort(t)
	writeConfig(t, filepath.Join(dir, "apps.yaml"), fmt.Sprintf(upManifest, gwPort))
	writeConfig(t, filepath.Join(dir, "route.yaml"), fmt.Sprintf(upRoute, "one"))
	writeConfig(t, filepath.Join(dir, "dr.yaml"), upDestinationRule)

	cmd := exec.Command(os.Args[0], "up", "-f", dir, "--state-dir", state, "--ca-dir", t.TempDir(),
		"--xds-address", "127.0.0.1:0", "--secure-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
		"--first-ip", "127.0.0.150", "--grace-period", "5s", "-o", "json")
	mark := "WEFT_UP_TEST_MARK=" + state // every process weft up starts inherits it
	cmd.Env = append(os.Environ(), "WEFT_TEST_ROLE=weft", mark)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	out := &syncbuf.Buffer{}
	statusc := make(chan *localmesh.Status, 1)
	go readUpOutput(stdout, out, statusc)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var st *localmesh.Status
	select {
	case st = <-statusc:
	case err := <-exited:
		t.Fatalf("weft up exited: %v\nstdout:\n%s\nstderr:\n%s", err, out, &stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("no status from weft up within 60 s\nstdout:\n%s\nstderr:\n%s", out, &stderr)
	}
	if len(st.Workloads) != 2 || len(st.Try) != 1 || st.Try[0].URL != fmt.Sprintf("http://127.0.0.1:%d/", gwPort) {
		t.Fatalf("status: %+v", st)
	}
	hello, sleep := st.Workloads[0], st.Workloads[1]
	if hello.Name != "hello" || sleep.Name != "sleep" || hello.PID == 0 || sleep.PID == 0 || hello.IP == sleep.IP {
		t.Fatalf("workloads: %+v", st.Workloads)
	}

	// Through the gateway, over mTLS: hello sees the gateway's identity.
	gatewayID := "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	waitUp(t, "hello through the gateway, with the gateway's identity", func() (bool, string) {
		hdr, body := httpGet(st.Try[0].URL)
		return strings.Contains(body, "app=hello") && strings.Contains(body, gatewayID) && hdr.Get("X-Version") == "one", body
	})
	// Between workloads: sleep → its sidecar → hello's sidecar → hello.
	call := fmt.Sprintf("http://127.0.0.1:%d/call?url=http://hello.default.svc.cluster.local:8080/", sleep.Ports["http"])
	waitUp(t, "sleep calling hello, hello seeing sleep's identity", func() (bool, string) {
		_, body := httpGet(call)
		return strings.Contains(body, "app=hello") && strings.Contains(body, "URI=spiffe://cluster.local/ns/default/sa/sleep"), body
	})

	// An edit of the directory applies live.
	writeConfig(t, filepath.Join(dir, "route.yaml"), fmt.Sprintf(upRoute, "two"))
	waitUp(t, "the edited VirtualService", func() (bool, string) {
		hdr, _ := httpGet(st.Try[0].URL)
		return hdr.Get("X-Version") == "two", hdr.Get("X-Version")
	})
	// weft apply replaces the directory's object in the running mesh.
	applied := filepath.Join(t.TempDir(), "vs.yaml")
	writeConfig(t, applied, fmt.Sprintf(upSubsetRoute, "three"))
	if code, o, e := weft("apply", "-f", applied, "--state-dir", state); code != 0 || o != "virtualservice default/hello created\n" {
		t.Fatalf("weft apply: status %d, stdout %q, stderr %q", code, o, e)
	}
	waitUp(t, "the applied VirtualService", func() (bool, string) {
		hdr, _ := httpGet(st.Try[0].URL)
		return hdr.Get("X-Version") == "three", hdr.Get("X-Version")
	})

	// An edited Workload restarts its replica (the old process goes).
	writeConfig(t, filepath.Join(dir, "apps.yaml"), strings.Replace(fmt.Sprintf(upManifest, gwPort), "APP_NAME: hello}", "APP_NAME: hello-again}", 1))
	waitUp(t, "hello restarted with its new environment", func() (bool, string) {
		_, body := httpGet(st.Try[0].URL)
		return strings.Contains(body, "app=hello-again"), body
	})
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", hello.PID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hello's first process (pid %d) is still there after its restart: %v", hello.PID, err)
	}

	// Ctrl-C: everything stops, status 0, no process left.
	if pids := processesWith(mark); len(pids) < 3 {
		t.Fatalf("processes with weft up's environment: %v, want weft up and its two workloads", pids)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("weft up after SIGINT: %v\nstderr:\n%s", err, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("weft up still running 30 s after SIGINT\nstderr:\n%s", &stderr)
	}
	for _, w := range st.Workloads {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", w.PID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("workload %s (pid %d) is still there after weft up stopped: %v", w.Name, w.PID, err)
		}
	}
	if pids := processesWith(mark); len(pids) > 0 {
		t.Errorf("processes started by weft up are still running after it stopped: %v", pids)
	}
	if _, err := localmesh.ReadState(state); !errors.Is(err, localmesh.ErrNotRunning) {
		t.Errorf("state after stop: %v, want ErrNotRunning", err)
	}
	if !strings.Contains(stderr.String(), "weft up: stopped") {
		t.Errorf("stderr %q: want the stop message", stderr.String())
	}
}

// processesWith lists the processes whose environment holds kv.
func processesWith(kv string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // not a process, or gone
		}
		for _, v := range strings.Split(string(env), "\x00") {
			if v == kv {
				out = append(out, e.Name())
				break
			}
		}
	}
	return out
}

// readUpOutput copies weft up's stdout into out and sends the JSON status
// (the lines from "{" to "}") once it is complete.
func readUpOutput(r io.Reader, out *syncbuf.Buffer, statusc chan<- *localmesh.Status) {
	sc := bufio.NewScanner(r)
	var js strings.Builder
	in, sent := false, false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		switch {
		case sent:
		case line == "{":
			in = true
			js.WriteString(line)
		case in && line == "}":
			js.WriteString(line)
			var st localmesh.Status
			if json.Unmarshal([]byte(js.String()), &st) == nil {
				statusc <- &st
				sent = true
			}
			in = false
		case in:
			js.WriteString(line)
		}
	}
}

// waitUp polls cond until it holds, for at most 30 s; the string is what
// was seen last, for the failure message.
func waitUp(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s; last seen %q", what, seen)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// httpGet returns a response's headers and body ("" on error).
func httpGet(url string) (http.Header, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		return http.Header{}, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Header, string(b)
}

// freeTCPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeConfig replaces a file atomically, as editors do.
func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
