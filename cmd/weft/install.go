package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/install"
)

// kubeFlags are the cluster flags of install and uninstall.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVar(&k.context, "context", "", "kubeconfig context (default: the current context)")
	cmd.Flags().StringVarP(&k.namespace, "namespace", "n", install.DefaultNamespace, "namespace of weft-control")
}

// config loads the kubeconfig as kubectl does, naming the cluster it
// points at.
func (k *kubeFlags) config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig (--kubeconfig, --context): %w", err)
	}
	raw, err := cc.RawConfig()
	name := k.context
	if err == nil && name == "" {
		name = raw.CurrentContext
	}
	return cfg, name, nil
}

// newInstallCommand builds `weft install`.
func newInstallCommand(s streams) *cobra.Command {
	var (
		kf      kubeFlags
		o       install.Options
		dryRun  bool
		confirm bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install or upgrade weft on a Kubernetes cluster",
		Long: `Install renders weft's Helm chart (charts/weft, built into this binary) with Helm's
engine and applies it: the namespace when missing, the CRDs (waiting until they are
established), then the ServiceAccounts, RBAC, the mesh ConfigMap, the Services, the
weft-control and ingress gateway Deployments and the webhooks, by server-side apply
(field manager "weft").
Values merge as in Helm: the chart's values.yaml, then -f files, then --set.
helm install weft charts/weft -n istio-system gives the same objects.

Running it again, with the same or a newer weft, is the upgrade: it is idempotent
and prints created, configured or unchanged per object.`,
		Example: `  weft install --dry-run > weft.yaml                 # print the manifests, touch nothing
  weft install -y
  weft install -y --set replicaCount=2 -f my-values.yaml --wait
  weft install -y --context kind-mesh -n mesh-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Namespace = kf.namespace
			if v := buildVersion().Version; releaseVersion.MatchString(v) {
				o.Version = v
			}
			if dryRun {
				m, err := install.Render(o.RenderOptions)
				if err != nil {
					return err
				}
				return m.WriteYAML(s.out)
			}
			cfg, name, err := kf.config()
			if err != nil {
				return err
			}
			if !confirm {
				ok, err := ask(cmd.InOrStdin(), s.out, fmt.Sprintf("Install weft into namespace %s of cluster %s (context %q)? [y/N] ", o.Namespace, cfg.Host, name))
				if err != nil || !ok {
					return errors.New("not installed (pass -y to install without asking)")
				}
			}
			o.Config = cfg
			o.Out = s.out
			if _, err := install.Install(cmd.Context(), o); err != nil {
				return err
			}
			if !o.Wait {
				fmt.Fprintf(s.out, "weft is installed; kubectl -n %s rollout status deployment/weft-control waits for weft-control\n", o.Namespace)
			}
			return nil
		},
	}
	kf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&o.Set, "set", nil, "set a chart value, as helm --set (key=value, a.b=c, list[0]=x; repeatable)")
	f.StringArrayVar(&o.SetString, "set-string", nil, `set a chart value as a string, as helm --set-string ("true" stays a string; repeatable)`)
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "chart values file, as helm -f (repeatable; later files win)")
	f.BoolVar(&dryRun, "dry-run", false, "print the YAML stream (CRDs first) and touch nothing")
	f.BoolVar(&o.Wait, "wait", false, "wait until the weft-control Deployment is available")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for the CRDs and, with --wait, the Deployment")
	f.BoolVarP(&confirm, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// newUninstallCommand builds `weft uninstall`.
func newUninstallCommand(s streams) *cobra.Command {
	var (
		kf      kubeFlags
		purge   bool
		confirm bool
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove weft from a Kubernetes cluster",
		Long: `Uninstall deletes what weft install applied (webhooks first) and the
istio-ca-root-cert ConfigMaps weft-control published. It keeps the CRDs (and so
every VirtualService, DestinationRule, ... in the cluster), the CA Secret
istio-ca-secret (a reinstall keeps the mesh root), a cacerts Secret and the
namespace; --purge also deletes the CRDs, with every Istio object, and the CA Secret.`,
		Example: `  weft uninstall -y
  weft uninstall -y --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, name, err := kf.config()
			if err != nil {
				return err
			}
			if !confirm {
				what := "Remove weft"
				if purge {
					what = "Remove weft, its CRDs with every Istio object, and the mesh root"
				}
				ok, err := ask(cmd.InOrStdin(), s.out, fmt.Sprintf("%s from namespace %s of cluster %s (context %q)? [y/N] ", what, kf.namespace, cfg.Host, name))
				if err != nil || !ok {
					return errors.New("nothing removed (pass -y to uninstall without asking)")
				}
			}
			return install.Uninstall(cmd.Context(), install.UninstallOptions{Namespace: kf.namespace, Config: cfg, Purge: purge, Out: s.out})
		},
	}
	kf.add(cmd)
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the CRDs (and every Istio object) and the CA Secret")
	cmd.Flags().BoolVarP(&confirm, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// ask prints question and reads a yes or no.
func ask(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// releaseVersion matches a released weft version (the image tags are
// published for those only; a pseudo-version v0.0.0-... is not one).
var releaseVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)[0-9.]*)?$`)
