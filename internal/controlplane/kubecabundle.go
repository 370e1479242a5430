package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Istio's per-namespace root ConfigMap (pilot's namespace controller):
// the injected sidecars mount it and pass root-cert.pem as --ca-root.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// rootCertLabels label the ConfigMap as Istio's namespace controller does.
var rootCertLabels = map[string]string{"istio.io/config": "true"}

// ignoredNamespaces get no root ConfigMap: Istio's inject.IgnoredNamespaces
// (recent Istio publishes into kube-system too, for ztunnel; weft runs no
// ztunnel, so kube-system stays ignored).
var ignoredNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true}

// Queue keys besides "ns/<namespace>": the two webhook configurations.
const (
	keyValidating = "webhook/validating"
	keyMutating   = "webhook/mutating"
)

// caBundleOptions configure a caBundlePublisher.
type caBundleOptions struct {
	Client kubernetes.Interface
	// Root is the mesh root bundle (PEM).
	Root []byte
	// Validating and Mutating name the webhook configurations whose
	// caBundle is the root ("" leaves that kind alone).
	Validating, Mutating string
	Logger               *slog.Logger
}

// caBundlePublisher keeps the mesh root where Kubernetes clients find it,
// as istiod does: the ConfigMap istio-ca-root-cert in every namespace but
// the ignored and the terminating ones (recreated when deleted, restored
// when edited), and the caBundle of weft-control's webhook
// configurations (re-patched when re-applied). Informers tell it what
// changed; one worker reconciles, writing only what differs, so that
// several replicas with the same root do not fight.
//
// RBAC: namespaces list, watch; configmaps list, watch, create, update
// (all namespaces); validatingwebhookconfigurations and
// mutatingwebhookconfigurations list, watch, update.
type caBundlePublisher struct {
	o       caBundleOptions
	queue   workqueue.TypedRateLimitingInterface[string]
	ns      cache.SharedIndexInformer
	cms     cache.SharedIndexInformer
	vwc     cache.SharedIndexInformer // nil without o.Validating
	mwc     cache.SharedIndexInformer // nil without o.Mutating
	factory []informers.SharedInformerFactory

	warnMu sync.Mutex
	warned map[string]bool
}

// newCABundlePublisher sets up the informers; run starts them.
func newCABundlePublisher(o caBundleOptions) (*caBundlePublisher, error) {
	p := &caBundlePublisher{
		o:      o,
		queue:  workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "ca-bundle"}),
		warned: map[string]bool{},
	}
	all := informers.NewSharedInformerFactory(o.Client, 0)
	byName := func(name string) informers.SharedInformerFactory {
		return informers.NewSharedInformerFactoryWithOptions(o.Client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = "metadata.name=" + name
		}))
	}
	cmf := byName(RootCertConfigMap)
	p.factory = []informers.SharedInformerFactory{all, cmf}
	p.ns = all.Core().V1().Namespaces().Informer()
	p.cms = cmf.Core().V1().ConfigMaps().Informer()
	nsKey := func(obj any) {
		if o, ok := namespaced(obj); ok {
			p.enqueueNamespace(o.GetNamespace())
		}
	}
	if _, err := p.cms.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: nsKey, UpdateFunc: func(_, n any) { nsKey(n) }, DeleteFunc: nsKey}); err != nil {
		return nil, err
	}
	nsName := func(obj any) {
		if o, ok := namespaced(obj); ok {
			p.enqueueNamespace(o.GetName())
		}
	}
	if _, err := p.ns.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: nsName, UpdateFunc: func(_, n any) { nsName(n) }}); err != nil {
		return nil, err
	}
	add := func(key string) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{AddFunc: func(any) { p.queue.Add(key) }, UpdateFunc: func(any, any) { p.queue.Add(key) }}
	}
	if o.Validating != "" {
		f := byName(o.Validating)
		p.factory = append(p.factory, f)
		p.vwc = f.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
		if _, err := p.vwc.AddEventHandler(add(keyValidating)); err != nil {
			return nil, err
		}
	}
	if o.Mutating != "" {
		f := byName(o.Mutating)
		p.factory = append(p.factory, f)
		p.mwc = f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
		if _, err := p.mwc.AddEventHandler(add(keyMutating)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// namespaced returns the object of an informer event (tombstones too).
func namespaced(obj any) (metav1.Object, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(metav1.Object)
	return o, ok
}

func (p *caBundlePublisher) enqueueNamespace(ns string) {
	if !ignoredNamespaces[ns] {
		p.queue.Add("ns/" + ns)
	}
}

// run starts the informers, waits for their caches, checks the webhook
// configurations once (a missing one is a warning) and reconciles until
// ctx ends.
func (p *caBundlePublisher) run(ctx context.Context) error {
	defer p.queue.ShutDown()
	for _, f := range p.factory {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range p.factory {
			f.Shutdown()
		}
	}()
	synced := []cache.InformerSynced{p.ns.HasSynced, p.cms.HasSynced}
	for _, inf := range []cache.SharedIndexInformer{p.vwc, p.mwc} {
		if inf != nil {
			synced = append(synced, inf.HasSynced)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended
	}
	if p.vwc != nil {
		p.queue.Add(keyValidating)
	}
	if p.mwc != nil {
		p.queue.Add(keyMutating)
	}
	go func() {
		<-ctx.Done()
		p.queue.ShutDown()
	}()
	for p.next(ctx) {
	}
	return nil
}

// next reconciles one key; false when the queue is shut down.
func (p *caBundlePublisher) next(ctx context.Context) bool {
	key, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(key)
	err := p.reconcile(ctx, key)
	switch {
	case err == nil:
		p.queue.Forget(key)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		p.queue.AddRateLimited(key) // raced another replica or an edit: look again
	default:
		p.o.Logger.Warn("publishing the mesh root", "key", key, "err", err)
		p.queue.AddRateLimited(key)
	}
	return true
}

func (p *caBundlePublisher) reconcile(ctx context.Context, key string) error {
	switch key {
	case keyValidating:
		return p.patchValidating(ctx)
	case keyMutating:
		return p.patchMutating(ctx)
	}
	ns, ok := strings.CutPrefix(key, "ns/")
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	return p.reconcileConfigMap(ctx, ns)
}

// reconcileConfigMap makes the namespace's root ConfigMap hold the root
// (Istio's InsertDataToConfigMap: other data keys and labels are kept).
func (p *caBundlePublisher) reconcileConfigMap(ctx context.Context, ns string) error {
	obj, exists, err := p.ns.GetStore().GetByKey(ns)
	if err != nil || !exists {
		return err // deleted: nothing to publish
	}
	if obj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	api := p.o.Client.CoreV1().ConfigMaps(ns)
	root := string(p.o.Root)
	obj, exists, err = p.cms.GetStore().GetByKey(ns + "/" + RootCertConfigMap)
	if err != nil {
		return err
	}
	if !exists {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns, Labels: maps.Clone(rootCertLabels)},
			Data:       map[string]string{RootCertKey: root},
		}
		_, err := api.Create(ctx, cm, metav1.CreateOptions{FieldManager: "weft-control"})
		if apierrors.IsForbidden(err) && isTerminating(err) {
			return nil // the namespace began terminating
		}
		return wrapRBAC(err, "create configmaps", ns)
	}
	cm := obj.(*corev1.ConfigMap)
	if cm.Data[RootCertKey] == root && hasLabels(cm.Labels, rootCertLabels) {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[RootCertKey] = root
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	maps.Copy(cm.Labels, rootCertLabels)
	_, err = api.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "weft-control"})
	return wrapRBAC(err, "update configmaps", ns)
}

// isTerminating reports an API refusal because the namespace is being
// deleted.
func isTerminating(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s) && strings.Contains(s.Status().Message, "terminat")
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// wrapRBAC names the permission an API error may lack.
func wrapRBAC(err error, verb, where string) error {
	if err == nil || apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return err
	}
	return fmt.Errorf("%s in %s: %w (weft-control needs %s)", strings.Fields(verb)[1], where, err, verb)
}

// patchValidating sets the caBundle of every webhook of the validating
// configuration to the root, when one differs.
func (p *caBundlePublisher) patchValidating(ctx context.Context) error {
	api := p.o.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	return patchCABundles(ctx, p, webhookTarget[*admissionregistrationv1.ValidatingWebhookConfiguration]{
		store: p.vwc.GetStore(), kind: "ValidatingWebhookConfiguration", name: p.o.Validating,
		consequence: "invalid Istio objects are not rejected at kubectl apply time",
		clientConfigs: func(c *admissionregistrationv1.ValidatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
			for i := range c.Webhooks {
				out[i] = &c.Webhooks[i].ClientConfig
			}
			return out
		},
		update: func(ctx context.Context, c *admissionregistrationv1.ValidatingWebhookConfiguration) error {
			_, err := api.Update(ctx, c, metav1.UpdateOptions{FieldManager: "weft-control"})
			return err
		},
	})
}

// patchMutating is patchValidating for the injection webhook.
func (p *caBundlePublisher) patchMutating(ctx context.Context) error {
	api := p.o.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	return patchCABundles(ctx, p, webhookTarget[*admissionregistrationv1.MutatingWebhookConfiguration]{
		store: p.mwc.GetStore(), kind: "MutatingWebhookConfiguration", name: p.o.Mutating,
		consequence: "sidecars are not injected",
		clientConfigs: func(c *admissionregistrationv1.MutatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(c.Webhooks))
			for i := range c.Webhooks {
				out[i] = &c.Webhooks[i].ClientConfig
			}
			return out
		},
		update: func(ctx context.Context, c *admissionregistrationv1.MutatingWebhookConfiguration) error {
			_, err := api.Update(ctx, c, metav1.UpdateOptions{FieldManager: "weft-control"})
			return err
		},
	})
}

// webhookTarget is one webhook configuration kind for patchCABundles.
type webhookTarget[T runtime.Object] struct {
	store         cache.Store
	kind, name    string
	consequence   string // what its absence means, for the warning
	clientConfigs func(T) []*admissionregistrationv1.WebhookClientConfig
	update        func(context.Context, T) error
}

// patchCABundles updates the configuration t names (from the informer's
// store) when one of its webhooks' caBundle is not the root.
func patchCABundles[T runtime.Object](ctx context.Context, p *caBundlePublisher, t webhookTarget[T]) error {
	obj, exists, err := t.store.GetByKey(t.name)
	if err != nil || !p.present(exists, t.kind, t.name, t.consequence) {
		return err
	}
	cfg := obj.(T).DeepCopyObject().(T)
	changed := false
	for _, cc := range t.clientConfigs(cfg) {
		if !bytes.Equal(cc.CABundle, p.o.Root) {
			cc.CABundle = p.o.Root
			changed = true
		}
	}
	if !changed {
		return nil
	}
	err = t.update(ctx, cfg)
	if err == nil {
		p.o.Logger.Info("set the mesh root as caBundle", strings.ToLower(t.kind), t.name)
	}
	return wrapRBAC(err, "update "+strings.ToLower(t.kind)+"s", t.name)
}

// present reports whether a webhook configuration exists, warning once
// per absence (it is not installed: nothing calls the webhook).
func (p *caBundlePublisher) present(exists bool, kind, name, consequence string) bool {
	p.warnMu.Lock()
	defer p.warnMu.Unlock()
	if exists {
		delete(p.warned, kind)
		return true
	}
	if !p.warned[kind] {
		p.warned[kind] = true
		p.o.Logger.Warn("no "+kind+" "+name+": "+consequence+" (install it; weft-control sets its caBundle when it appears)", "kind", kind, "name", name)
	}
	return false
}
