// Command weft-control is weft's control plane: it reads Istio
// configuration from a directory (VirtualService, DestinationRule, Gateway,
// ServiceEntry, WorkloadEntry, Sidecar, PeerAuthentication,
// AuthorizationPolicy, RequestAuthentication, and weft's LocalRateLimit of
// networking.weft.dev), keeps the last good version
// of every object, serves Envoy xDS v3 over ADS to weft-proxy, Envoy and
// proxyless gRPC clients, and runs the mesh CA.
//
// It is also the mesh's certificate authority: on --secure-address
// (default 127.0.0.1:15012, Istio's port) it serves Istio's
// IstioCertificateService and ADS over TLS. The CA directory (--ca-dir,
// default weft/ca under the user's configuration directory, e.g.
// ~/.config/weft/ca on Linux) keeps the generated root (root-cert.pem,
// root-key.pem) and the key of the bootstrap tokens that `weft token`
// mints (token-key). --ca-cert, --ca-key and --ca-chain use a
// user-supplied root or intermediate instead of the generated root;
// --secure-address "" turns the secure port and the CA off.
//
// With --kubeconfig (or, when it is empty, in a pod: the in-cluster
// configuration), the Services and EndpointSlices of the cluster join the
// mesh beside the ServiceEntries, and the CA also authenticates pods by
// their projected service-account tokens (audience --token-audience,
// Istio's istio-ca). --kubeconfig none keeps file mode in a pod. There the
// CA keeps its material in Secrets of --namespace, as istiod does (the
// plug-in cacerts, else istio-ca-secret, created by the first replica),
// unless --ca-cert or an explicit --ca-dir is given, and publishes the
// root in every namespace's ConfigMap istio-ca-root-cert and in the
// webhook configurations' caBundle.
//
//	weft-control --config-dir examples/mesh
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/inject"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("weft-control", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o controlplane.Options
	var level string
	fs.StringVar(&o.ConfigDir, "config-dir", "", "directory of Istio YAML/JSON, watched for changes (required unless --kubeconfig is given)")
	fs.StringVar(&o.WebhookAddress, "webhook-address", "", `address of the validating admission webhook for the Istio kinds (HTTPS, path /validate; the chart's ValidatingWebhookConfiguration validation.weft.dev), e.g. ":15017"; "" turns it off`)
	fs.StringVar(&o.WebhookCertFile, "webhook-cert", "", "certificate of the webhook (PEM); default: one issued by the mesh CA for weft-control.istio-system.svc")
	fs.StringVar(&o.WebhookKeyFile, "webhook-key", "", "private key of --webhook-cert (PEM)")
	var injection bool
	var inj inject.Options
	fs.BoolVar(&injection, "sidecar-injection", false, "also serve the sidecar injection webhook on --webhook-address (path /inject; the chart's MutatingWebhookConfiguration weft-sidecar-injector)")
	fs.StringVar(&inj.ProxyImage, "proxy-image", "", "image of the injected sidecar and init container (default ghcr.io/weftmesh/weft:"+inject.Version+")")
	fs.StringVar(&o.XDSAddress, "xds-address", controlplane.DefaultXDSAddress, "address of the ADS (xDS) gRPC server")
	fs.StringVar(&o.HTTPAddress, "http-address", controlplane.DefaultHTTPAddress, "address of /debug/syncz, /debug/configz, /metrics and /ready")
	fs.DurationVar(&o.Debounce, "debounce", controlplane.DefaultDebounce, "how long pushes wait for further changes")
	fs.StringVar(&o.RootNamespace, "root-namespace", "istio-system", "namespace of mesh-wide configuration")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	var meshFile string
	fs.StringVar(&meshFile, "mesh-config", "", "Istio mesh configuration (MeshConfig YAML, as under the istio ConfigMap's \"mesh\" key): extensionProviders, defaultProviders, accessLogFile, enableTracing, defaultConfig.tracing; default: Istio's defaults")
	fs.IntVar(&o.Dashboard.Port, "proxy-metrics-port", dashboard.DefaultMetricsPort, "port of the proxies' Istio metrics (/stats/prometheus), scraped for the dashboard at each proxy's IP (node metadata WEFT_METRICS_ADDRESS overrides)")
	fs.DurationVar(&o.Dashboard.Interval, "dashboard-scrape-interval", dashboard.DefaultInterval, "how often the dashboard scrapes the proxies' metrics")
	caDir, caDirErr := ca.DefaultDir()
	fs.StringVar(&o.SecureAddress, "secure-address", controlplane.DefaultSecureAddress, `address of the TLS gRPC server with the CA (IstioCertificateService) and ADS; "" turns it and the CA off`)
	fs.StringVar(&o.CA.Dir, "ca-dir", caDir, "CA directory: the generated root (root-cert.pem, root-key.pem) and the bootstrap token key (token-key)")
	fs.StringVar(&o.CA.TrustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of workload identities")
	fs.DurationVar(&o.CA.MaxTTL, "cert-ttl", ca.DefaultMaxTTL, "lifetime of workload certificates (the most a request may ask for; at least 10s)")
	fs.StringVar(&o.CA.CertFile, "ca-cert", "", "user-supplied signing certificate (root or intermediate CA, PEM) instead of the generated root")
	fs.StringVar(&o.CA.KeyFile, "ca-key", "", "private key of --ca-cert (PEM)")
	fs.StringVar(&o.CA.ChainFile, "ca-chain", "", "certificates above --ca-cert up to and including the root (PEM); not needed when --ca-cert is a root")
	var kubeconfig, clusterID, audiences string
	fs.StringVar(&kubeconfig, "kubeconfig", "", `kubeconfig file of a Kubernetes cluster: its Services and EndpointSlices join the mesh (merged with ServiceEntries), the CA accepts pods' projected service-account tokens (TokenReview), and without --config-dir the configuration is the cluster's Istio custom resources (weft install, or kubectl apply -f charts/weft/crds), watched live, problems written into their status. Empty: the in-cluster configuration when running in a pod, else file mode only; "none": file mode only`)
	fs.StringVar(&clusterID, "cluster-id", "Kubernetes", "name of the Kubernetes cluster in the endpoints' topology.istio.io/cluster label")
	fs.StringVar(&audiences, "token-audience", "istio-ca", "audiences (comma-separated) a pod's service-account token must be valid for to get a certificate")
	namespace := defaultNamespace() // kube.go
	fs.StringVar(&namespace, "namespace", namespace, "weft-control's namespace in Kubernetes mode (default $POD_NAMESPACE, else istio-system): the CA keeps its root in the Secret istio-ca-secret there, shared by the replicas, or signs with Istio's plug-in Secret cacerts when present; --ca-cert or an explicit --ca-dir keep the CA in files")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weft-control: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 1
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "weft-control: --log-level %q: use debug, info, warn or error\n", level)
		return 1
	}
	if injection {
		o.Injection = &inj
	}
	if meshFile != "" {
		m, problems := config.LoadMeshConfig(meshFile)
		for _, p := range problems {
			fmt.Fprintln(stderr, "weft-control: --mesh-config:", p)
		}
		if m == nil {
			return 1
		}
		o.Mesh = m
	}
	kube, err := kubernetesOptions(kubeconfig, clusterID, audiences) // kube.go
	if err != nil {
		fmt.Fprintln(stderr, "weft-control:", err)
		return 1
	}
	if kube != nil {
		kube.Namespace = namespace
		kube.CASecrets = caInSecrets(fs, o.CA.CertFile) // kube.go
	}
	o.Kubernetes = kube
	if o.SecureAddress != "" && o.CA.Dir == "" && (kube == nil || !kube.CASecrets) {
		fmt.Fprintf(stderr, "weft-control: the CA needs a directory: pass --ca-dir (no default: %v)\n", caDirErr)
		return 1
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cp, err := controlplane.New(o)
	if err != nil {
		fmt.Fprintln(stderr, "weft-control:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	if err := cp.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "weft-control:", err)
		return 1
	}
	o.Logger.Info("stopped", "uptime", time.Since(start).Round(time.Second))
	return 0
}
