package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/ca"
	"github.com/weftmesh/weft/internal/ca/kubeca"
	configkube "github.com/weftmesh/weft/internal/config/kube"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/registry/kube"
)

// KubernetesOptions connect weft-control to a Kubernetes cluster: its
// Services and EndpointSlices become mesh services beside the
// ServiceEntries (Kubernetes first when both declare a host in one
// namespace, as in Istio), and the CA also accepts the pods' projected
// service-account tokens (TokenReview).
type KubernetesOptions struct {
	// Config reaches the API server (required).
	Config *rest.Config
	// ClusterID names the cluster in the endpoints' topology.istio.io/cluster
	// label (default "Kubernetes", Istio's).
	ClusterID string
	// DomainSuffix ends the services' hostnames (default cluster.local).
	DomainSuffix string
	// TokenAudiences are the audiences a workload's token must be valid
	// for to get a certificate (default ["istio-ca"], Istio's).
	TokenAudiences []string
	// Namespace is weft-control's (default istio-system): where the CA
	// Secrets are (CASecrets).
	Namespace string
	// CASecrets keeps the CA in Kubernetes Secrets of Namespace, shared by
	// the replicas, as istiod does (kubeca.NewKube: the plug-in Secret
	// cacerts, else istio-ca-secret, created by the first replica); false:
	// Options.CA's directory or files.
	CASecrets bool
}

// DefaultNamespace is weft-control's namespace when none is given.
const DefaultNamespace = "istio-system"

// namespace is weft-control's own namespace: KubernetesOptions.Namespace,
// else DefaultNamespace (also in file mode, where the webhook
// certificate's names still use it).
func (c *ControlPlane) namespace() string {
	if k := c.o.Kubernetes; k != nil && k.Namespace != "" {
		return k.Namespace
	}
	return DefaultNamespace
}

// kubeState is the control plane's Kubernetes side (nil without
// Options.Kubernetes).
type kubeState struct {
	client   kubernetes.Interface
	registry *kube.Registry
	// caBundle publishes the mesh root (kubecabundle.go); nil without
	// the CA.
	caBundle *caBundlePublisher
	// hosts is the cluster's Services for the configuration checks
	// (kubehosts.go); nil until the registry synced.
	hosts atomic.Pointer[kubeHosts]
}

// setupKubernetes creates the Kubernetes registry, merges it with the
// file registry and subscribes pushes to its changes. Without
// Options.Kubernetes the file registry alone is the source of services.
func (c *ControlPlane) setupKubernetes() error {
	k := c.o.Kubernetes
	if k == nil {
		c.services = c.files
		return nil
	}
	if k.Config == nil {
		return errors.New("Kubernetes: Options.Kubernetes.Config is required (pass --kubeconfig, or run in a pod)")
	}
	client, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return fmt.Errorf("Kubernetes client for %s: %w", k.Config.Host, err)
	}
	reg, err := kube.New(kube.Options{Client: client, ClusterID: k.ClusterID, DomainSuffix: k.DomainSuffix, Logger: c.log})
	if err != nil {
		return err
	}
	agg, err := registry.NewAggregate(reg, c.files)
	if err != nil {
		return err
	}
	c.kube = &kubeState{client: client, registry: reg}
	c.services = agg
	// Only the Kubernetes registry triggers pushes: the file registry is
	// updated by push itself, after a configuration change already did.
	reg.Subscribe(c.onKubernetesChange)
	return nil
}

// onKubernetesChange runs on the registry's goroutine after a rebuild.
func (c *ControlPlane) onKubernetesChange() {
	c.refreshKubeHosts()
	c.reasonsMu.Lock()
	c.reasons[triggerService] = true // Services and EndpointSlices are not told apart
	c.reasonsMu.Unlock()
	c.changed.CompareAndSwap(0, time.Now().UnixNano())
	c.trigger()
}

// startKubernetes runs the registry's informers (their error, if any,
// goes to errc) and waits until they have synced, so that the first push
// already holds the cluster's services (istiod is not ready before its
// caches sync either).
func (c *ControlPlane) startKubernetes(ctx context.Context, errc chan<- error) error {
	if c.kube == nil {
		return nil
	}
	failed := make(chan error, 1)
	go func() {
		err := c.kube.registry.Run(ctx)
		failed <- err
		errc <- err
	}()
	c.log.Info("waiting for the Kubernetes caches to sync", "api_server", c.o.Kubernetes.Config.Host)
	select {
	case <-c.kube.registry.Synced():
		c.log.Info("Kubernetes caches synced", "services", len(c.kube.registry.Services()))
		c.refreshKubeHosts()
		return nil
	case err := <-failed:
		if err == nil {
			err = context.Cause(ctx)
		}
		return fmt.Errorf("Kubernetes registry: %w", err)
	case <-ctx.Done():
		return c.kube.registry.WaitForSync(ctx)
	}
}

// newCA loads the mesh CA: from the Kubernetes Secrets with
// KubernetesOptions.CASecrets, else from Options.CA's directory or files.
// The log says which.
func (c *ControlPlane) newCA(co ca.Options) (*ca.CA, error) {
	if k := c.o.Kubernetes; k != nil && k.CASecrets {
		ns := c.namespace()
		c.log.Info("CA material from Kubernetes Secrets", "namespace", ns, "plug_in", kubeca.PluggedSecretName, "self_signed", kubeca.SelfSignedSecretName)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return kubeca.NewKube(ctx, kubeca.KubeCAOptions{Client: c.kube.client, Namespace: ns, CA: co})
	}
	if co.CertFile != "" {
		c.log.Info("CA material from files", "ca_cert", co.CertFile)
	} else {
		c.log.Info("CA material from a directory", "dir", co.Dir)
	}
	return ca.New(co)
}

// setupCABundle prepares the publisher of the mesh root (the
// istio-ca-root-cert ConfigMaps, and the webhook configurations' caBundle
// when the webhook certificate comes from the mesh CA). Kubernetes mode
// with the CA only.
func (c *ControlPlane) setupCABundle(webhookFromCA bool) error {
	if c.kube == nil || c.ca == nil {
		return nil
	}
	o := caBundleOptions{Client: c.kube.client, Root: c.ca.RootPEM(), Logger: c.log}
	if webhookFromCA {
		o.Validating = configkube.ValidatingWebhookName
		if c.o.Injection != nil {
			o.Mutating = InjectorWebhookName
		}
	}
	p, err := newCABundlePublisher(o)
	if err != nil {
		return fmt.Errorf("publishing the mesh root: %w", err)
	}
	c.kube.caBundle = p
	return nil
}

// InjectorWebhookName is the MutatingWebhookConfiguration of sidecar
// injection (inject.WebhookConfiguration's default name).
const InjectorWebhookName = "weft-sidecar-injector"

// runCABundle starts the mesh root publisher, if any (its result goes to
// errc when ctx ends).
func (c *ControlPlane) runCABundle(ctx context.Context, errc chan<- error) {
	if c.kube == nil || c.kube.caBundle == nil {
		return
	}
	go func() { errc <- c.kube.caBundle.run(ctx) }()
}

// authenticator is the CSR service's: the bootstrap tokens, and in
// Kubernetes mode also the projected service-account tokens (the local
// check runs first: it costs no API call).
func (c *ControlPlane) authenticator() (ca.Authenticator, error) {
	local := ca.TokenAuthenticator{Keys: c.ca.Tokens()}
	if c.kube == nil {
		return local, nil
	}
	k, err := kubeca.NewKubeAuthenticator(kubeca.KubeAuthenticatorOptions{Client: c.kube.client, Audiences: c.o.Kubernetes.TokenAudiences})
	if err != nil {
		return nil, err
	}
	return ca.Authenticators{local, k}, nil
}

// currentServices returns the merged services for a push and logs the
// merge's warnings (a host both a Service and a ServiceEntry declare).
func (c *ControlPlane) currentServices() []*model.Service {
	if agg, ok := c.services.(*registry.Aggregate); ok {
		s, problems := agg.Result()
		c.logProblems(problems)
		return s
	}
	return c.services.Services()
}

// closeUnserved releases what New opened when Run stops before serving.
func (c *ControlPlane) closeUnserved() {
	c.config.Close()
	c.xdsLn.Close()
	c.httpLn.Close()
	if c.secure != nil {
		c.secure.ln.Close()
	}
}
