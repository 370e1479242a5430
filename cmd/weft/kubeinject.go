package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/inject"
)

// kubeInjectOptions are the flags of `weft kube-inject`, a subset of
// inject.Options named after istioctl kube-inject's where it has one.
type kubeInjectOptions struct {
	file string
	o    inject.Options
}

// newKubeInjectCommand builds `weft kube-inject`, manual sidecar injection.
func newKubeInjectCommand(s streams) *cobra.Command {
	var k kubeInjectOptions
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE",
		Short: "Add the weft sidecar to the Kubernetes workloads in a YAML file, as istioctl kube-inject",
		Long: `kube-inject reads Kubernetes YAML (one or more documents) and writes it to stdout with
weft's sidecar added to every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job and CronJob: the same mutation as the injection webhook that
weft-control serves (weft-proxy as a native sidecar, the istio-init capture container,
the token and root CA volumes, probes rewritten to port 15020). Other documents are
copied. Pods opted out (sidecar.istio.io/inject: "false") or already injected are
left as they are, so running it twice changes nothing.`,
		Example: `  weft kube-inject -f bookinfo.yaml | kubectl apply -f -
  kubectl get deploy reviews-v1 -o yaml | weft kube-inject -f - | kubectl apply -f -
  weft kube-inject -f app.yaml --proxy-image registry.example.com/weft-proxy:1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return k.run(cmd.InOrStdin(), s) },
	}
	f := cmd.Flags()
	f.StringVarP(&k.file, "filename", "f", "", `the YAML file to inject ("-" reads stdin; required)`)
	f.StringVar(&k.o.ProxyImage, "proxy-image", "", "image of weft-proxy (default ghcr.io/weftmesh/weft:"+inject.Version+")")
	f.StringVar(&k.o.InitImage, "init-image", "", "image running weft iptables (default the proxy image)")
	f.StringVar(&k.o.DiscoveryAddress, "discovery-address", "", "weft-control's xDS address, host:port (default weft-control.istio-system.svc:15010)")
	f.StringVar(&k.o.CAAddress, "ca-address", "", "weft-control's CA address, host:port (default the discovery host, port 15012)")
	f.StringVar(&k.o.TrustDomain, "trust-domain", "", "SPIFFE trust domain (default cluster.local)")
	f.BoolVar(&k.o.NoProbeRewrite, "no-probe-rewrite", false, "keep the apps' probes instead of pointing them at the sidecar's port 15020")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func (k *kubeInjectOptions) run(stdin io.Reader, s streams) error {
	inj, err := inject.New(k.o)
	if err != nil {
		return err
	}
	in := stdin
	if k.file != "-" {
		f, err := os.Open(k.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	// Buffered so that an error in a later document writes nothing.
	var out bytes.Buffer
	if err := inject.InjectYAML(in, &out, inj); err != nil {
		return fmt.Errorf("%s: %w", k.file, err)
	}
	_, err = s.out.Write(out.Bytes())
	return err
}
