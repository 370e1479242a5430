package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/agent/certs"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/server"
)

// sidecarOptions are the settings of `weft-proxy sidecar`, which builds
// the bootstrap of a mesh proxy the way Istio's agent does and runs it.
type sidecarOptions struct {
	discoveryAddress string // host:port of weft-control's xDS (gRPC)
	proxyType        string // sidecar or router
	ip               string
	name             string
	namespace        string
	labels           string // k=v,k2=v2
	serviceAccount   string
	adminAddress     string
	metricsAddress   string
	healthAddress    string
	// status: --status-address and the app probes it serves (status.go).
	status           statusOptions
	httpProxyPort    string
	httpProxyAddress string
	// dnsAddress is the DNS proxy's ip:port ("" off), dnsResolvConf the
	// file naming its upstream resolvers (dns.go).
	dnsAddress    string
	dnsResolvConf string
	// meta holds node metadata from ISTIO_META_* variables that no flag
	// covers (Istio passes every one of them on).
	meta map[string]string

	// Certificates (all empty: no CA, plain text as before).
	caAddress   string // host:port; default the discovery host, port 15012
	caRoot      string // PEM file verifying the CA's server certificate
	tokenFile   string
	trustDomain string
	sdsSocket   string // default under runtimeDir
	runtimeDir  string // XDG_RUNTIME_DIR, TMPDIR or /tmp
	// caDir is weft-control's CA directory on this machine (local mode):
	// with neither --ca-root nor a token, the sidecar takes the mesh root
	// and mints its own token from it. Empty: local mode off.
	caDir string
	// localCA says the CA settings came from caDir; localNote says why
	// local mode is off although caDir is set (logged at start).
	localCA   bool
	localNote string
	// token is --token or WEFT_TOKEN (or --token-file's reader), kept as a
	// source so that printing the options never shows it.
	token certs.TokenSource

	// captureOpts: --capture, --uid, --gid (capture.go); caRootPEM is
	// the root read before the process dropped its privileges.
	captureOpts captureOptions
	caRootPEM   []byte

	printBootstrap bool
	logLevel       string
	drainTimeS     int
	concurrency    int
}

// metricsAuto is --metrics-address's and --health-address's default: the
// workload IP, port 15090 (Istio's prometheus port) or 15021 (its health
// port), so that sidecars on 127.0.0.2, 127.0.0.3, ... of one machine do
// not collide.
const metricsAuto = "auto"

// caPort is the CA's port when --ca-address is not given: weft-control's
// secure port, istiod's 15012.
const caPort = "15012"

// security reports whether a CA is configured (--ca-root or a token).
func (o *sidecarOptions) security() bool {
	return o.caRoot != "" || o.token != nil
}

// sidecarFlag is one string flag and the environment variable that sets
// it when the flag is not given. Istio's agent names are used where it has
// one (INSTANCE_IP, POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT, and
// ISTIO_META_<KEY> for node metadata).
type sidecarFlag struct {
	name, env, def, usage string
	dst                   func(o *sidecarOptions) *string
	// fromEnv converts the variable's value (nil: taken as is).
	fromEnv func(string) (string, error)
}

var sidecarFlags = []sidecarFlag{
	{"discovery-address", "WEFT_DISCOVERY_ADDRESS", "127.0.0.1:15010", "weft-control's xDS address, host:port (plain-text gRPC)",
		func(o *sidecarOptions) *string { return &o.discoveryAddress }, nil},
	{"type", "WEFT_PROXY_TYPE", "sidecar", "sidecar, or router for a gateway",
		func(o *sidecarOptions) *string { return &o.proxyType }, nil},
	{"ip", "INSTANCE_IP", "127.0.0.1", "the workload's IP address",
		func(o *sidecarOptions) *string { return &o.ip }, nil},
	{"name", "POD_NAME", "", "the workload's name (required)",
		func(o *sidecarOptions) *string { return &o.name }, nil},
	{"namespace", "POD_NAMESPACE", "default", "the workload's namespace",
		func(o *sidecarOptions) *string { return &o.namespace }, nil},
	{"labels", "ISTIO_METAJSON_LABELS", "", "the workload's labels, k=v,k2=v2 (the variable holds a JSON object, as Istio's)",
		func(o *sidecarOptions) *string { return &o.labels }, labelsFromJSON},
	{"service-account", "SERVICE_ACCOUNT", "", "the workload's service account",
		func(o *sidecarOptions) *string { return &o.serviceAccount }, nil},
	{"admin-address", "WEFT_ADMIN_ADDRESS", "127.0.0.1:15000", "the admin interface's address, ip:port",
		func(o *sidecarOptions) *string { return &o.adminAddress }, nil},
	{"health-address", "WEFT_HEALTH_ADDRESS", metricsAuto, "where Kubernetes probes readiness (/healthz/ready, 200 once the proxy is configured and not draining), ip:port; " + metricsAuto + " is the --ip with Istio's port 15021, empty turns it off",
		func(o *sidecarOptions) *string { return &o.healthAddress }, nil},
	{"status-address", "WEFT_STATUS_ADDRESS", metricsAuto, "the agent's status server (Istio's 15020): the app probes the injector rewrote (/app-health/..., from " + agent.AppProbersEnv + ") and /healthz/ready, ip:port; " + metricsAuto + " is the --ip with port 15020, empty turns it off",
		func(o *sidecarOptions) *string { return &o.status.address }, nil},
	{"metrics-address", "WEFT_METRICS_ADDRESS", metricsAuto, "where Prometheus scrapes istio_* and envoy_* metrics (/stats/prometheus), ip:port; " + metricsAuto + " is the --ip with Istio's port 15090, empty turns it off",
		func(o *sidecarOptions) *string { return &o.metricsAddress }, nil},
	{"http-proxy-port", "ISTIO_META_HTTP_PROXY_PORT", "", "port of the outbound HTTP proxy listener (node metadata HTTP_PROXY_PORT; weft-control's default 15001)",
		func(o *sidecarOptions) *string { return &o.httpProxyPort }, nil},
	{"http-proxy-address", "ISTIO_META_HTTP_PROXY_ADDRESS", "", "address of the outbound HTTP proxy listener (node metadata HTTP_PROXY_ADDRESS; default 127.0.0.1)",
		func(o *sidecarOptions) *string { return &o.httpProxyAddress }, nil},
	{"dns-address", "WEFT_DNS_ADDRESS", dnsAuto, "the DNS proxy's address, ip:port, UDP and TCP (answers the mesh's service names, forwards the rest); " + dnsAuto + " is the --ip with Istio's port 15053, empty turns it off",
		func(o *sidecarOptions) *string { return &o.dnsAddress }, nil},
	{"dns-resolv-conf", "WEFT_DNS_RESOLV_CONF", "/etc/resolv.conf", "the resolv.conf naming the DNS proxy's upstream resolvers and search domains",
		func(o *sidecarOptions) *string { return &o.dnsResolvConf }, nil},
	{"ca-address", "CA_ADDR", "", "the CA's address, host:port (default: the discovery address's host, port " + caPort + ")",
		func(o *sidecarOptions) *string { return &o.caAddress }, nil},
	{"ca-root", "WEFT_CA_ROOT", "", "PEM file of the mesh root that verifies the CA's server certificate; with a token it turns on certificates and SDS",
		func(o *sidecarOptions) *string { return &o.caRoot }, nil},
	{"token-file", "WEFT_TOKEN_FILE", "", "file holding the bootstrap token the CA authenticates this workload with (read at every request)",
		func(o *sidecarOptions) *string { return &o.tokenFile }, nil},
	{"trust-domain", "TRUST_DOMAIN", "cluster.local", "SPIFFE trust domain of the workload identity",
		func(o *sidecarOptions) *string { return &o.trustDomain }, nil},
	{"ca-dir", "WEFT_CA_DIR", "", "weft-control's CA directory on this machine (default weft/ca under XDG_CONFIG_HOME or ~/.config): with neither --ca-root nor a token, the sidecar trusts its root-cert.pem and mints its own bootstrap token with its token-key (local mode, mTLS with no other flag); --ca-dir= turns this off",
		func(o *sidecarOptions) *string { return &o.caDir }, nil},
	{"sds-socket", "WEFT_SDS_SOCKET", "", "Unix socket of the agent's SDS server (default RUNTIME_DIR/weft-proxy-NAME.NAMESPACE/sds.sock, RUNTIME_DIR from XDG_RUNTIME_DIR or TMPDIR)",
		func(o *sidecarOptions) *string { return &o.sdsSocket }, nil},
}

// labelsFromJSON turns ISTIO_METAJSON_LABELS into the flag's form.
func labelsFromJSON(v string) (string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return "", fmt.Errorf("ISTIO_METAJSON_LABELS: want a JSON object of strings: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ","), nil
}

// parseSidecar reads the sidecar's flags over the environment environ
// (KEY=VALUE entries, as os.Environ): a flag wins over its variable, which
// wins over the default. This is the only place the environment is read.
func parseSidecar(args, environ []string, stderr io.Writer) (*sidecarOptions, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	o := &sidecarOptions{meta: map[string]string{}}
	fs := flag.NewFlagSet("weft-proxy sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	covered := map[string]bool{}
	for _, f := range sidecarFlags {
		def := f.def
		if v, ok := env[f.env]; ok && v != "" {
			if f.fromEnv != nil {
				var err error
				if v, err = f.fromEnv(v); err != nil {
					return nil, err
				}
			}
			def = v
		}
		covered[f.env] = true
		fs.StringVar(f.dst(o), f.name, def, f.usage+" (env "+f.env+")")
	}
	fs.BoolVar(&o.printBootstrap, "print-bootstrap", false, "print the bootstrap YAML and exit")
	fs.StringVar(&o.logLevel, "l", "info", "log level: trace, debug, info, warning, error, critical, off")
	fs.StringVar(&o.logLevel, "log-level", "info", "same as -l")
	fs.IntVar(&o.drainTimeS, "drain-time-s", 600, "seconds to drain connections on shutdown and after listener updates")
	fs.IntVar(&o.concurrency, "concurrency", 0, "worker threads (GOMAXPROCS); 0 keeps Go's default")
	o.captureOpts.register(fs)
	var token string
	fs.StringVar(&token, "token", "", "the bootstrap token (env WEFT_TOKEN; prefer the variable or --token-file: a flag shows in ps)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.setToken(token, env["WEFT_TOKEN"]); err != nil {
		return nil, err
	}
	caDirSet := env["WEFT_CA_DIR"] != ""
	fs.Visit(func(f *flag.Flag) { caDirSet = caDirSet || f.Name == "ca-dir" })
	if !caDirSet {
		o.caDir = defaultCADir(env)
	}
	o.runtimeDir = firstNonEmpty(env["XDG_RUNTIME_DIR"], env["TMPDIR"], "/tmp")
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for k, v := range env {
		if key, ok := strings.CutPrefix(k, "ISTIO_META_"); ok && key != "" && !covered[k] {
			o.meta[key] = v
		}
	}
	if o.drainTimeS < 0 || o.concurrency < 0 {
		return nil, errors.New("--drain-time-s and --concurrency must be 0 or more")
	}
	if err := o.captureOpts.apply(o.meta); err != nil {
		return nil, err
	}
	o.status.fromEnv(env) // status.go
	return o, o.check()
}

// check validates the identity the way weft-control will read it.
func (o *sidecarOptions) check() error {
	if o.proxyType != "sidecar" && o.proxyType != "router" {
		return fmt.Errorf("--type %q: must be sidecar or router", o.proxyType)
	}
	if o.name == "" {
		return errors.New("--name (or POD_NAME) is required: the workload's name")
	}
	if strings.ContainsAny(o.name, ".~") || o.namespace == "" || strings.ContainsAny(o.namespace, ".~") {
		return fmt.Errorf("--name %q / --namespace %q: must be non-empty and without '.' or '~' (they form the node id)", o.name, o.namespace)
	}
	if _, err := netip.ParseAddr(o.ip); err != nil {
		return fmt.Errorf("--ip %q: not an IP address", o.ip)
	}
	if _, err := netip.ParseAddrPort(o.adminAddress); err != nil {
		return fmt.Errorf("--admin-address %q: want ip:port", o.adminAddress)
	}
	if host, port, err := net.SplitHostPort(o.discoveryAddress); err != nil || host == "" {
		return fmt.Errorf("--discovery-address %q: want host:port", o.discoveryAddress)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("--discovery-address %q: %q is not a port", o.discoveryAddress, port)
	}
	if o.metricsAddress == metricsAuto {
		o.metricsAddress = net.JoinHostPort(o.ip, "15090")
	}
	if _, err := netip.ParseAddrPort(o.metricsAddress); o.metricsAddress != "" && err != nil {
		return fmt.Errorf("--metrics-address %q: want ip:port, or empty for none", o.metricsAddress)
	}
	if o.healthAddress == metricsAuto {
		o.healthAddress = net.JoinHostPort(o.ip, "15021")
	}
	if _, err := netip.ParseAddrPort(o.healthAddress); o.healthAddress != "" && err != nil {
		return fmt.Errorf("--health-address %q: want ip:port, or empty for none", o.healthAddress)
	}
	if o.httpProxyPort != "" {
		if n, err := strconv.ParseUint(o.httpProxyPort, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("--http-proxy-port %q: not a port number", o.httpProxyPort)
		}
	}
	if o.httpProxyAddress != "" {
		if _, err := netip.ParseAddr(o.httpProxyAddress); err != nil {
			return fmt.Errorf("--http-proxy-address %q: not an IP address", o.httpProxyAddress)
		}
	}
	if _, err := parseLabels(o.labels); err != nil {
		return err
	}
	if err := o.checkDNS(); err != nil { // dns.go
		return err
	}
	if err := o.checkStatus(); err != nil { // status.go
		return err
	}
	return o.checkSecurity()
}

// setToken picks the token: --token, else --token-file, else WEFT_TOKEN.
func (o *sidecarOptions) setToken(flagToken, envToken string) error {
	switch {
	case flagToken != "" && o.tokenFile != "":
		return errors.New("--token and --token-file: give one")
	case flagToken != "":
		o.token = certs.StaticToken(flagToken)
	case o.tokenFile != "":
		o.token = certs.FileToken(o.tokenFile)
	case envToken != "":
		o.token = certs.StaticToken(envToken)
	}
	return nil
}

// checkSecurity checks the CA settings and fills their defaults: the CA
// address from the discovery host, the SDS socket under the runtime
// directory, the service account "default" (Kubernetes' default) since
// it is part of the identity.
func (o *sidecarOptions) checkSecurity() error {
	if !o.security() {
		o.useLocalCA()
	}
	if !o.security() {
		return nil
	}
	if o.caRoot == "" || o.token == nil {
		return errors.New("certificates need both --ca-root (the mesh root) and a token (--token-file, --token or WEFT_TOKEN); give neither to run in plain text")
	}
	if o.caAddress == "" {
		host, _, _ := net.SplitHostPort(o.discoveryAddress)
		o.caAddress = net.JoinHostPort(host, caPort)
	}
	if host, port, err := net.SplitHostPort(o.caAddress); err != nil || host == "" {
		return fmt.Errorf("--ca-address %q: want host:port", o.caAddress)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("--ca-address %q: %q is not a port", o.caAddress, port)
	}
	if o.serviceAccount == "" {
		o.serviceAccount = "default"
	}
	if o.trustDomain == "" || strings.ContainsAny(o.trustDomain, "/:@ ") {
		return fmt.Errorf("--trust-domain %q: want a domain such as cluster.local", o.trustDomain)
	}
	if o.sdsSocket == "" {
		o.sdsSocket = filepath.Join(o.runtimeDir, "weft-proxy-"+o.name+"."+o.namespace, "sds.sock")
	}
	if !filepath.IsAbs(o.sdsSocket) {
		return fmt.Errorf("--sds-socket %q: want an absolute path", o.sdsSocket)
	}
	return nil
}

// defaultCADir is weft-control's default --ca-dir read from environ, as
// ca.DefaultDir reads it from the process environment on Linux
// (XDG_CONFIG_HOME, else HOME/.config), so that this stays the one place
// the environment is read. Empty when neither is set.
func defaultCADir(env map[string]string) string {
	base := env["XDG_CONFIG_HOME"]
	if base == "" && env["HOME"] != "" {
		base = filepath.Join(env["HOME"], ".config")
	}
	if base == "" {
		return ""
	}
	return filepath.Join(base, "weft", "ca")
}

// useLocalCA turns on local mode when caDir holds weft-control's root
// certificate and token key: the sidecar trusts the root and mints a
// short-lived token for its own identity before every certificate request.
// Only a process that may read the CA directory (the same user as
// weft-control, on the same machine) can do this; other deployments hand
// out tokens (weft token) or use the platform's identity.
func (o *sidecarOptions) useLocalCA() {
	if o.caDir == "" {
		return
	}
	root := filepath.Join(o.caDir, ca.RootCertFile)
	if _, err := os.Stat(root); err != nil {
		o.localNote = "no mesh root " + root + " (weft-control creates it on its first start with this --ca-dir): plain text"
		return
	}
	if _, err := os.Stat(filepath.Join(o.caDir, ca.TokenKeyFile)); err != nil {
		o.localNote = "no token key in " + o.caDir + " (weft-control creates it on its first start with this --ca-dir): plain text"
		return
	}
	dir := o.caDir
	o.caRoot, o.localCA = root, true
	o.token = func(context.Context) (string, error) {
		keys, err := ca.LoadTokenKey(dir, nil)
		if err != nil {
			return "", fmt.Errorf("local mode: %w", err)
		}
		sa := o.serviceAccount
		if sa == "" {
			sa = "default"
		}
		return keys.Mint(ca.Identity{Namespace: o.namespace, ServiceAccount: sa}, localTokenTTL)
	}
}

// localTokenTTL is the lifetime of a token minted in local mode: one per
// certificate request, so a few minutes are plenty.
const localTokenTTL = 5 * time.Minute

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// parseLabels reads k=v,k2=v2.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: want k=v pairs separated by commas", s)
		}
		out[k] = v
	}
	return out, nil
}

// tlsModeLabel is Istio's label for a workload whose sidecar speaks mTLS.
const tlsModeLabel = "security.istio.io/tlsMode"

// agent converts the options into the bootstrap builder's.
func (o *sidecarOptions) agent() (*agent.Options, error) {
	labels, err := parseLabels(o.labels)
	if err != nil {
		return nil, err
	}
	if o.security() && labels[tlsModeLabel] == "" {
		// The proxy will have a workload certificate: the label tells
		// weft-control to send it mTLS configuration (and other proxies
		// to use mTLS towards it), as Istio's injector labels pods.
		if labels == nil {
			labels = map[string]string{}
		}
		labels[tlsModeLabel] = "istio"
	}
	ao := &agent.Options{
		DiscoveryAddress: o.discoveryAddress,
		Type:             o.proxyType,
		IP:               o.ip,
		Name:             o.name,
		Namespace:        o.namespace,
		Labels:           labels,
		ServiceAccount:   o.serviceAccount,
		HTTPProxyPort:    o.httpProxyPort,
		HTTPProxyAddress: o.httpProxyAddress,
		AdminAddress:     o.adminAddress,
		MetricsAddress:   o.metricsAddress,
		HealthAddress:    o.healthAddress,
		Metadata:         o.meta,
		SDSSocket:        o.sdsSocket,
	}
	if o.dnsAddress != "" {
		ao.EnableDNSMetadata() // dns.go
	}
	return ao, nil
}

// runSidecar is `weft-proxy sidecar`: it builds the bootstrap and prints
// it (--print-bootstrap) or serves it as `-c` would. With a CA, the
// agent's certificate manager and SDS server start before the proxy and
// stop after it.
func runSidecar(args, environ []string, stdout, stderr io.Writer) int {
	o, err := parseSidecar(args, environ, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
		return 1
	}
	ao, err := o.agent()
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
		return 1
	}
	yml, err := agent.BootstrapYAML(ao)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
		return 1
	}
	if o.printBootstrap {
		stdout.Write(yml)
		return 0
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
		return 1
	}
	b, err := bootstrap.ParseAndValidate(yml, "weft-proxy sidecar")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.concurrency > 0 {
		runtime.GOMAXPROCS(o.concurrency)
	}
	if o.localNote != "" {
		log.Warn("no workload certificate", "reason", o.localNote)
	}
	if err := o.switchUser(); err != nil { // capture.go
		fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
		return 1
	}
	if o.security() {
		sec, err := startSecurity(o, log)
		if err != nil {
			fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
			return 1
		}
		defer sec.Stop()
	}
	if o.dnsAddress != "" {
		dns, err := startDNS(o, ao, log) // dns.go
		if err != nil {
			fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
			return 1
		}
		defer dns.Stop()
	}
	if o.status.address != "" {
		st, err := startStatus(o, log) // status.go
		if err != nil {
			fmt.Fprintln(stderr, "weft-proxy sidecar:", err)
			return 1
		}
		defer st.Stop()
	}
	return serve(server.Options{
		Bootstrap:   b,
		DrainTime:   drainTime(o.drainTimeS),
		Concurrency: runtime.GOMAXPROCS(0),
		LogLevel:    o.logLevel,
		Logger:      log,
	}, log, stderr)
}

// startSecurity starts the agent's certificate manager and SDS server.
func startSecurity(o *sidecarOptions, log *slog.Logger) (*agent.Security, error) {
	pem, err := o.caRootPEM, error(nil)
	if pem == nil {
		pem, err = os.ReadFile(o.caRoot)
	}
	if err != nil {
		return nil, fmt.Errorf("--ca-root: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-root %s: no PEM certificate in it", o.caRoot)
	}
	sec, err := agent.StartSecurity(agent.SecurityOptions{
		Certs: certs.Options{
			CAAddress: o.caAddress, RootCAs: roots, Token: o.token,
			TrustDomain: o.trustDomain, Namespace: o.namespace, ServiceAccount: o.serviceAccount,
		},
		SDSSocket: o.sdsSocket,
		Logger:    log.With("component", "agent"),
	})
	if err != nil {
		return nil, err
	}
	mode := "token"
	if o.localCA {
		mode = "local: root and token key from " + o.caDir
	}
	log.Info("agent started", "identity", sec.Manager().Identity(), "ca", o.caAddress, "ca_root", o.caRoot, "auth", mode, "sds_socket", o.sdsSocket)
	return sec, nil
}
